"""The WHO Global Health Observatory OData API (`GHO_API_BASE_URL`) as a source.

`client` makes bounded, retried requests; `answer` validates one answer;
`paging` pages an indicator by Id and proves it complete against the count.
"""

from src.redact import without_credentials
from src.sources import Source
from src.sources.gho_odata.client import GhoClient
from src.sources.gho_odata.paging import PAGING, KeysetPager, new_paging_state


class GhoODataSource(Source):
    def __init__(self, settings, client=None):
        self.settings = settings
        self.client = client or GhoClient(settings)

    def batch_request(self, dataset) -> dict:
        return {
            "base_url": without_credentials(self.settings.api_base_url),
            "indicator": dataset.indicator,
            "filter": dataset.filter,
            "page_size": self.settings.page_size,
            "paging": PAGING,
        }

    def new_state(self, attempt: int = 1) -> dict:
        return new_paging_state(attempt)

    def fetch(self, request, state, sink, bar, dataset_name) -> None:
        KeysetPager(self.client, request, state, sink, bar, dataset_name).run()

    def backoff(self, attempt: int) -> float:
        return self.client.backoff(attempt)

    def close(self) -> None:
        self.client.close()
