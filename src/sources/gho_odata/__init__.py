"""The WHO Global Health Observatory OData API (`GHO_API_BASE_URL`) as a source.

`client` makes bounded, retried requests; `answer` validates one answer;
`paging` pages an indicator by Id and proves it complete against the count,
the rest of it after the first page in Id ranges side by side (`ranges`,
GHO_PAGE_CONCURRENCY); `politeness` bounds the requests in flight and pauses
them all after a backoff, process-wide; `indicators` pages every indicator of
a dataset into one batch, in turn.
"""

from src.redact import without_credentials
from src.sources import Source
from src.sources.gho_odata import probe
from src.sources.gho_odata.client import GhoClient
from src.sources.gho_odata.indicators import batch_request, fetch_batch, new_batch_state


class GhoODataSource(Source):
    def __init__(self, settings, client=None):
        self.settings = settings
        self.client = client or GhoClient(settings)

    def batch_request(self, dataset) -> dict:
        return batch_request(without_credentials(self.settings.api_base_url), dataset, self.settings.page_size)

    def new_state(self, request: dict, attempt: int = 1) -> dict:
        return new_batch_state(request, attempt)

    def fetch(self, request, state, sink, bar, dataset_name) -> None:
        fetch_batch(self.client, request, state, sink, bar, dataset_name)

    def probe(self, request: dict):
        return probe.probe(self.client, request, request.get("indicators") or [request["indicator"]])

    def page_fact(self, raw: bytes):
        return probe.latest_row(raw)

    def facts_of(self, pages):
        return probe.facts_of(pages)

    def backoff(self, attempt: int) -> float:
        return self.client.backoff(attempt)

    def close(self) -> None:
        self.client.close()
