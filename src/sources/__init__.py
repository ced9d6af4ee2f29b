"""The source seam: what an extract fetches rows from.

The extract owns the landing batch (its folder, its resumable state on disk,
its manifest, restarts); a source owns the conversation with one API. Another
WHO API is added as one more module implementing `Source`, chosen in
`open_source`.

The paging state a source keeps (saved as `progress.json` after every page, so
a killed run resumes it) is a dict of the source's own making, with these keys
the extract reads: `pages` (landed answers, each `{"file", "rows", "sha256"}`
with sha256 None until the writer fills it), `landed` (rows landed), `count`
(the rows the source says it holds, or None; for a dataset of several
indicators, the sum of their counts), `requests` (made so far) and `attempt`
(1, then one more per restart).
"""

from abc import ABC, abstractmethod
from typing import Optional


class Source(ABC):
    @abstractmethod
    def batch_request(self, dataset) -> dict:
        """The parameters that define a landing batch (JSON); a resume must match them exactly."""

    @abstractmethod
    def new_state(self, request: dict, attempt: int = 1) -> dict:
        """The paging state of a fresh attempt at `request`."""

    @abstractmethod
    def fetch(self, request: dict, state: dict, sink, bar, dataset_name: str) -> None:
        """Land every remaining answer of `request`, resuming from `state`.

        Each accepted answer goes to `sink.put(file_name or None, raw_bytes,
        state, read_fact)` with the state that lists it, in order, and a
        callable giving what `page_fact` would say of it, from what the source
        decoded already (the sink asks only when it keeps facts);
        `sink.check()` raises
        when the sink has failed. Returns once the batch is proven complete;
        raises SourceChanged when the source's rows changed under it (the
        extract then starts the batch over) and an ExtractError otherwise.
        """

    def probe(self, request: dict) -> Optional[dict]:
        """{indicator: facts} the source tells cheaply (JSON; equal facts mean nothing to download), or None
        when it cannot tell; a source without a probe always downloads."""
        return None

    def page_fact(self, raw: bytes):
        """What a landed answer's rows say about the probe's facts (JSON), for `confirms`."""
        return None

    def facts_of(self, pages: list) -> Optional[dict]:
        """What `probe` answers, while the source holds what a complete download landed: `pages` are
        (indicator, rows, first Id, `page_fact`) of its pages, in order; None when that cannot be said."""
        return None

    @abstractmethod
    def backoff(self, attempt: int) -> float:
        """Seconds to wait before restart `attempt`."""

    @abstractmethod
    def close(self) -> None: ...


def open_source(settings) -> Source:
    """The source of this installation's datasets (today every dataset comes from GHO's OData API)."""
    from src.sources.gho_odata import GhoODataSource

    return GhoODataSource(settings)
