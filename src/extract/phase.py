"""Extract: a source's answers -> a landing batch proven complete (`src.contracts.landing`).

A page is only trusted once the saved paging state (`progress.json`) lists
it, so a run killed at any moment resumes from the last complete page and never
skips or repeats one. When the source changes while it is paged, the batch
starts over, at most MAX_RESTARTS times. The manifest is written last: its
presence is what makes the batch complete for the transform.
"""

import logging
import time
from dataclasses import dataclass
from typing import Optional

from src.contracts import landing
from src.contracts.landing import Manifest, PageEntry
from src.contracts.layout import Layout, landing_dir
from src.contracts.results import PhaseResult
from src.errors import ExtractError, SourceChanged
from src.extract.batches import indicators_of, open_batch, start_over
from src.extract.page_writer import PageWriter
from src.extract.probe import ChangeProbe
from src.faultpoints import crash_point
from src.locks import phase_lock
from src.progress_bar import ProgressBar
from src.sources import open_source
from src.storage import open_store

log = logging.getLogger("gho_etl.extract")


@dataclass
class ExtractResult:
    dataset: str
    batch_id: str
    pages: int
    rows: int
    resumed: bool
    seconds: float
    source_count: Optional[int] = None
    restarts: int = 0
    unchanged_by: Optional[str] = None  # "probe": the change probe found nothing new, nothing was landed


def run(settings, dataset, database=None) -> PhaseResult:
    """The phase as the runner calls it (extract needs no database)."""
    result = extract_dataset(settings, dataset)
    return PhaseResult(
        rows_in=result.rows,
        rows_written=result.rows,
        batches=0 if result.unchanged_by else 1,
        source_count=result.source_count,
        details=result,
        unchanged_by=result.unchanged_by,
    )


def extract_dataset(settings, dataset, source=None, store=None) -> ExtractResult:
    """Fetch every row of a dataset's indicators into a landing batch proven complete."""
    started = time.monotonic()
    store = store or open_store(settings)
    own_source = source is None
    source = source or open_source(settings)
    try:
        with phase_lock(Layout(settings.data_dir), dataset.name, "extract"):
            store.sweep(landing_dir(dataset.name))
            request = source.batch_request(dataset)
            probe = ChangeProbe(settings, store, source, dataset, request)
            if probe.unchanged():
                seconds = time.monotonic() - started
                return ExtractResult(dataset.name, "", 0, 0, False, seconds, probe.source_count(), 0, "probe")
            batch_id, state, resumed = open_batch(store, source, dataset, request)
            # A page may wait for the writer from each request that may be answered at once.
            depth = settings.page_concurrency + 1
            state, page_facts = _fetch_until_complete(
                store, source, dataset, request, batch_id, state, probe.scan, depth
            )
            manifest = _manifest(batch_id, dataset, request, state)
            crash_point("extract.before_manifest")
            landing.write_manifest(store, manifest)
            probe.record(manifest, page_facts)
    finally:
        if own_source:
            source.close()
    result = ExtractResult(
        dataset.name,
        batch_id,
        len(manifest.pages),
        manifest.rows,
        resumed,
        time.monotonic() - started,
        source_count=manifest.source_count,
        restarts=manifest.restarts,
    )
    _log_result(dataset, result, manifest)
    return result


def _fetch_until_complete(store, source, dataset, request, batch_id, state, scan, depth):
    """(the complete state, what `scan` said of each page of it)."""
    while True:
        try:
            with ProgressBar(log, f"extract {dataset.name}") as bar:
                return state, _fetch(store, source, dataset, request, batch_id, state, bar, scan, depth)
        except SourceChanged as change:
            state = start_over(store, source, dataset, request, batch_id, state, change)


def _fetch(store, source, dataset, request, batch_id, state, bar, scan, depth) -> dict:
    writer = PageWriter(store, dataset.name, batch_id, scan, depth)
    try:
        source.fetch(request, state, writer, bar, dataset.name)
    except BaseException:
        writer.close(check=False)  # what is queued is still written: the saved state stays true
        raise
    writer.close()
    writer.fill_digests(state["pages"])
    return writer.facts


def _manifest(batch_id, dataset, request, state) -> Manifest:
    pages = tuple(PageEntry.from_json(page) for page in state["pages"])
    rows = sum(page.rows for page in pages)
    count = state["count"]
    if rows != state["landed"] or (count is not None and rows != count):
        raise ExtractError(  # paging guarantees this; a manifest must never claim otherwise
            f"{indicators_of(dataset)}: {rows} rows landed, the source counts {count}"
        )
    return Manifest(
        batch_id=batch_id,
        dataset=dataset.name,
        request=request,
        pages=pages,
        rows=rows,
        source_count=count,
        complete_by="count" if count is not None else "two empty answers",
        requests=state["requests"],
        restarts=state["attempt"] - 1,
    )


def _log_result(dataset, result, manifest):
    if manifest.source_count is None:
        log.warning(
            "%s: the API sent no @odata.count, so nothing proves batch %s complete but two empty answers "
            "in a row; a server that answers empty by mistake would cut it short",
            dataset.name,
            result.batch_id,
            extra={"dataset": dataset.name, "batch_id": result.batch_id},
        )
    log.info(
        "extracted %s: %d rows (source count %s) in %d page(s) into landing batch %s",
        dataset.name,
        result.rows,
        "none" if result.source_count is None else result.source_count,
        result.pages,
        result.batch_id,
        extra={
            "dataset": dataset.name,
            "batch_id": result.batch_id,
            "rows": result.rows,
            "pages": result.pages,
            "source_count": result.source_count,
            "requests": manifest.requests,
            "restarts": result.restarts,
        },
    )
