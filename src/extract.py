"""Extract: GHO API pages -> data/landing/<dataset>/<batch_id>/.

A landing batch directory holds:
- `request.json`: what is being fetched (so a resumed run asks for the same thing),
- `page-NNNNN.json`: each raw API response, written atomically as it arrives,
- `progress.json`: the pages known complete and the paging state (`src.paging`),
- `manifest.json`: written last, once the batch is proven complete (the rows
  landed equal the source's count, or two empty answers ended it); its
  presence marks the batch complete.

A page file is only trusted once `progress.json` lists it, so a run killed at
any moment resumes from the last complete page and never skips or repeats one.
When the source changes while it is paged, the batch starts over, at most
MAX_RESTARTS times.
"""

import copy
import hashlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Optional

from src.errors import ExtractError
from src.faultpoints import crash_point
from src.gho_client import GhoClient
from src.paging import PAGING, KeysetPager, SourceChanged, new_progress
from src.progress import Progress
from src.storage import (
    Layout,
    new_batch_id,
    phase_lock,
    read_json,
    remove_tree,
    sweep_temp_files,
    write_bytes_atomic,
    write_json_atomic,
)

log = logging.getLogger("gho_etl.extract")

MANIFEST = "manifest.json"
PROGRESS = "progress.json"
REQUEST = "request.json"
MANIFEST_VERSION = 2
MAX_RESTARTS = 3


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


def batch_request(settings, dataset) -> dict:
    """The parameters that define a landing batch; a resume must match them exactly."""
    return {
        "base_url": settings.api_base_url,
        "indicator": dataset.indicator,
        "filter": dataset.filter,
        "page_size": settings.page_size,
        "paging": PAGING,
    }


def complete_batches(layout: Layout, dataset_name: str):
    """Complete landing batch directories, oldest first."""
    root = layout.landing(dataset_name)
    if not root.exists():
        return []
    return sorted(p for p in _batch_dirs(root) if (p / MANIFEST).exists())


def _batch_dirs(root):
    return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]


def _open_batch(layout, dataset, request):
    """Return (batch_dir, progress, resumed): the incomplete batch to resume, or a new one."""
    root = layout.landing(dataset.name)
    root.mkdir(parents=True, exist_ok=True)
    incomplete = sorted(p for p in _batch_dirs(root) if not (p / MANIFEST).exists())
    for candidate in reversed(incomplete):
        try:
            matches = read_json(candidate / REQUEST) == request
            progress = read_json(candidate / PROGRESS)
        except (OSError, ValueError):
            matches = False
        if matches:
            for stale in incomplete:
                if stale != candidate:
                    remove_tree(stale)
            log.info(
                "resuming landing batch %s of %s after %d complete page(s)",
                candidate.name,
                dataset.name,
                len(progress["pages"]),
                extra={"dataset": dataset.name, "batch_id": candidate.name},
            )
            return candidate, progress, True
    for stale in incomplete:
        log.info("discarding incomplete landing batch %s (its request differs or is unreadable)", stale.name)
        remove_tree(stale)
    batch_dir = root / new_batch_id()
    batch_dir.mkdir()
    progress = new_progress()
    write_json_atomic(batch_dir / REQUEST, request)
    write_json_atomic(batch_dir / PROGRESS, progress)
    return batch_dir, progress, False


def extract_dataset(settings, dataset, client: GhoClient = None) -> ExtractResult:
    """Fetch every row of a dataset's indicator into a landing batch proven complete."""
    layout = Layout(settings.data_dir)
    started = time.monotonic()
    own_client = client is None
    client = client or GhoClient(settings)
    try:
        with phase_lock(layout, dataset.name, "extract"):
            sweep_temp_files(layout.landing(dataset.name))
            request = batch_request(settings, dataset)
            batch_dir, progress, resumed = _open_batch(layout, dataset, request)
            while True:
                try:
                    with Progress(log, f"extract {dataset.name}") as bar:
                        _fetch_pages(client, dataset, request, batch_dir, progress, bar)
                    break
                except SourceChanged as change:
                    progress = _start_over(client, dataset, batch_dir, progress, str(change))
            manifest = _manifest(batch_dir, dataset, request, progress)
            crash_point("extract.before_manifest")
            write_json_atomic(batch_dir / MANIFEST, manifest)
    finally:
        if own_client:
            client.close()
    if manifest["source_count"] is None:
        log.warning(
            "%s: the API sent no @odata.count, so nothing proves batch %s complete but two empty answers "
            "in a row; a server that answers empty by mistake would cut it short",
            dataset.name,
            batch_dir.name,
            extra={"dataset": dataset.name, "batch_id": batch_dir.name},
        )
    result = ExtractResult(
        dataset.name,
        batch_dir.name,
        len(progress["pages"]),
        manifest["rows"],
        resumed,
        time.monotonic() - started,
        source_count=manifest["source_count"],
        restarts=manifest["restarts"],
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
            "requests": manifest["requests"],
            "restarts": result.restarts,
        },
    )
    return result


def _manifest(batch_dir, dataset, request, progress) -> dict:
    rows = sum(page["rows"] for page in progress["pages"])
    count = progress["count"]
    if rows != progress["landed"] or (count is not None and rows != count):
        raise ExtractError(  # paging guarantees this; a manifest must never claim otherwise
            f"indicator {request['indicator']}: {rows} rows landed, the source counts {count}"
        )
    return {
        "version": MANIFEST_VERSION,
        "batch_id": batch_dir.name,
        "dataset": dataset.name,
        "request": request,
        "pages": progress["pages"],
        "rows": rows,
        "source_count": count,
        "complete_by": "count" if count is not None else "two empty answers",
        "requests": progress["requests"],
        "restarts": progress["attempt"] - 1,
    }


def _start_over(client, dataset, batch_dir, progress, reason) -> dict:
    """Discard the attempt's pages after the source changed under it; fail once MAX_RESTARTS are used."""
    indicator = dataset.indicator
    restarts = progress["attempt"] - 1
    if restarts >= MAX_RESTARTS:
        raise ExtractError(
            f"indicator {indicator}: the source changed while it was paged, {restarts + 1} times in a row "
            f"(last: {reason}); try again later"
        )
    delay = client.backoff(restarts + 1)
    log.warning(
        "%s: %s; landing batch %s starts over in %.1fs (restart %d of %d)",
        dataset.name,
        reason,
        batch_dir.name,
        delay,
        restarts + 1,
        MAX_RESTARTS,
        extra={"dataset": dataset.name, "batch_id": batch_dir.name, "restart": restarts + 1},
    )
    fresh = new_progress(progress["attempt"] + 1)
    write_json_atomic(batch_dir / PROGRESS, fresh)  # first: the old pages are no longer listed, so never trusted
    for page in progress["pages"]:
        (batch_dir / page["file"]).unlink(missing_ok=True)
    time.sleep(delay)
    return fresh


class _PageWriter:
    """Writes pages and progress in order, in a thread, while the next page downloads.

    Each item is a page file (or None) and the progress that lists it: the page
    is renamed into place before the progress naming it, so a crash at any
    moment leaves progress that only lists pages on disk. At most two pages
    wait in memory. The writer also computes each page's sha256 (off the
    fetching thread's path) and fills it into every progress it writes, and
    into the fetching side's pages on close (`fill_digests`).
    """

    def __init__(self, batch_dir):
        self.batch_dir = batch_dir
        self.error = None
        self.digests = {}
        self._items = queue.Queue(maxsize=2)
        self._thread = threading.Thread(target=self._run, name="extract-writer", daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            item = self._items.get()
            if item is None:
                return
            if self.error is not None:
                continue  # drain: the fetching side stops at its next check
            name, raw, progress = item
            try:
                if name:
                    self.digests[name] = hashlib.sha256(raw).hexdigest()
                self.fill_digests(progress["pages"])
                if name:
                    write_bytes_atomic(self.batch_dir / name, raw)
                    crash_point("extract.page_written")
                write_json_atomic(self.batch_dir / PROGRESS, progress)
                crash_point("extract.page_done")
            except Exception as exc:  # any failure must reach the fetching side, or put() would wait for ever
                self.error = exc

    def put(self, name, raw, progress):
        self.check()
        self._items.put((name, raw, copy.deepcopy(progress)))

    def fill_digests(self, pages):
        for page in pages:
            if page.get("sha256") is None:
                page["sha256"] = self.digests[page["file"]]

    def check(self):
        if self.error is not None:
            raise ExtractError(f"cannot write landing files in {self.batch_dir}: {self.error}")

    def close(self, check=True):
        self._items.put(None)
        self._thread.join()
        if check:
            self.check()


def _fetch_pages(client, dataset, request, batch_dir, progress, bar):
    writer = _PageWriter(batch_dir)
    try:
        KeysetPager(client, request, progress, writer, bar, dataset.name).run()
    except BaseException:
        writer.close(check=False)  # what is queued is still written: progress stays true
        raise
    writer.close()
    writer.fill_digests(progress["pages"])
