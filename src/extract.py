"""Extract: GHO API pages -> data/landing/<dataset>/<batch_id>/.

A landing batch directory holds:
- `request.json`: what is being fetched (so a resumed run asks for the same thing),
- `page-NNNNN.json`: each raw API response, written atomically as it arrives,
- `progress.json`: the pages known complete and the next request to make,
- `manifest.json`: written last; its presence marks the batch complete.

A page file is only trusted once `progress.json` lists it, so a run killed at
any moment resumes from the last complete page and never skips or repeats one.
"""

import copy
import hashlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin

from src.errors import ExtractError
from src.faultpoints import crash_point
from src.gho_client import GhoClient
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


@dataclass
class ExtractResult:
    dataset: str
    batch_id: str
    pages: int
    rows: int
    resumed: bool
    seconds: float


def batch_request(settings, dataset) -> dict:
    """The parameters that define a landing batch; a resume must match them exactly."""
    return {
        "base_url": settings.api_base_url,
        "indicator": dataset.indicator,
        "filter": dataset.filter,
        "page_size": settings.page_size,
    }


def complete_batches(layout: Layout, dataset_name: str):
    """Complete landing batch directories, oldest first."""
    root = layout.landing(dataset_name)
    if not root.exists():
        return []
    return sorted(p for p in _batch_dirs(root) if (p / MANIFEST).exists())


def _batch_dirs(root):
    return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]


def _first_params(request) -> dict:
    params = {"$top": str(request["page_size"]), "$skip": "0", "$orderby": "Id"}
    if request["filter"]:
        params["$filter"] = request["filter"]
    return params


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
    progress = {"pages": [], "next": {"url": None, "params": _first_params(request)}, "skip": 0}
    write_json_atomic(batch_dir / REQUEST, request)
    write_json_atomic(batch_dir / PROGRESS, progress)
    return batch_dir, progress, False


def extract_dataset(settings, dataset, client: GhoClient = None) -> ExtractResult:
    """Fetch every page of a dataset's indicator into a complete landing batch."""
    layout = Layout(settings.data_dir)
    started = time.monotonic()
    own_client = client is None
    client = client or GhoClient(settings)
    try:
        with phase_lock(layout, dataset.name, "extract"):
            sweep_temp_files(layout.landing(dataset.name))
            request = batch_request(settings, dataset)
            batch_dir, progress, resumed = _open_batch(layout, dataset, request)
            with Progress(log, f"extract {dataset.name}") as bar:
                _fetch_pages(client, dataset, request, batch_dir, progress, bar)
            rows = sum(page["rows"] for page in progress["pages"])
            manifest = {
                "batch_id": batch_dir.name,
                "dataset": dataset.name,
                "request": request,
                "pages": progress["pages"],
                "rows": rows,
            }
            crash_point("extract.before_manifest")
            write_json_atomic(batch_dir / MANIFEST, manifest)
    finally:
        if own_client:
            client.close()
    result = ExtractResult(
        dataset.name, batch_dir.name, len(progress["pages"]), rows, resumed, time.monotonic() - started
    )
    log.info(
        "extracted %s: %d rows in %d page(s) into landing batch %s",
        dataset.name,
        rows,
        result.pages,
        result.batch_id,
        extra={"dataset": dataset.name, "batch_id": result.batch_id, "rows": rows, "pages": result.pages},
    )
    return result


class _PageWriter:
    """Writes pages and progress in order, in a thread, while the next page downloads.

    Each item is a page file (or None) and the progress that lists it: the page
    is renamed into place before the progress naming it, so a crash at any
    moment leaves progress that only lists pages on disk. At most two pages
    wait in memory.
    """

    def __init__(self, batch_dir):
        self.batch_dir = batch_dir
        self.error = None
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
                    write_bytes_atomic(self.batch_dir / name, raw)
                    crash_point("extract.page_written")
                write_json_atomic(self.batch_dir / PROGRESS, progress)
                crash_point("extract.page_done")
            except OSError as exc:
                self.error = exc

    def put(self, name, raw, progress):
        self.check()
        self._items.put((name, raw, copy.deepcopy(progress)))

    def check(self):
        if self.error is not None:
            raise ExtractError(f"cannot write landing files in {self.batch_dir}: {self.error}")

    def close(self, check=True):
        self._items.put(None)
        self._thread.join()
        if check:
            self.check()


def _fetch_pages(client, dataset, request, batch_dir, progress, bar):
    page_size = request["page_size"]
    indicator_url = client.indicator_url(request["indicator"])
    previous_digest = progress.get("last_digest")
    writer = _PageWriter(batch_dir)
    try:
        while progress["next"] is not None:
            writer.check()
            step = progress["next"]
            url = step["url"] or indicator_url
            page = client.get_page(url, step["params"], request["indicator"])
            crash_point("extract.page_received")
            digest = hashlib.sha256(page.raw).hexdigest()
            if page.count and digest == previous_digest:
                raise ExtractError(
                    f"indicator {request['indicator']}: the API returned the same page twice "
                    "(it ignores $skip); set GHO_PAGE_SIZE above the indicator's row count"
                )
            number = len(progress["pages"])
            name = None
            if page.count or number == 0:
                name = f"page-{number:05d}.json"
                progress["pages"].append({"file": name, "rows": page.count, "sha256": digest})
            progress["skip"] += page.count
            progress["last_digest"] = previous_digest = digest
            progress["next"] = _next_step(page, url, progress["skip"], page_size, request)
            writer.put(name, page.raw, progress)
            bar.update(page.count, f"page {number + 1}")
            log.debug(
                "%s: page %d, %d rows (%d so far)",
                dataset.name,
                number + 1,
                page.count,
                progress["skip"],
                extra={"dataset": dataset.name, "page": number + 1, "rows": page.count},
            )
    except BaseException:
        writer.close(check=False)  # what is queued is still written: progress stays true
        raise
    writer.close()


def _next_step(page, url, fetched, page_size, request):
    if page.next_link:
        # Server-driven paging: the link carries every parameter itself.
        return {"url": urljoin(url, page.next_link), "params": None}
    if page.count != page_size:
        # A short page is the last one; a longer one means the server ignored
        # $top and sent everything at once.
        return None
    params = _first_params(request)
    params["$skip"] = str(fetched)
    return {"url": None, "params": params}
