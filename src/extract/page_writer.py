"""Writing landed answers and the paging state in order, while the next answers download."""

import copy
import hashlib
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

from src.contracts import layout
from src.contracts.landing import PROGRESS, batch_file
from src.errors import ExtractError
from src.faultpoints import crash_point


class PageWriter:
    """The sink a source hands its answers to (`put`), for one landing batch.

    Each item is a page file (or None) and the paging state that lists it. A
    page is hashed (sha256) and written by a small pool of threads, so pages
    fetched side by side are written side by side (hashing, writing and fsync
    release the GIL; on object storage each is a PUT of its own). One thread
    writes the states, in the order put, each only once every page it lists is
    in place: a crash at any moment leaves a state that only lists pages in the
    store. States waiting together are saved as the latest alone, which lists
    every page the others list. At most `depth` items wait (2 for pages fetched
    one after another; one more than the pages fetched side by side). Given
    `scan`, the pool also reads what each page says for the change probe
    (`facts`); digests are filled into every state written, and into the
    fetching side's pages on close (`fill_digests`).
    """

    def __init__(self, store, dataset, batch_id, scan=None, depth=2):
        self.store = store
        self.scan = scan  # page -> what it says for the change probe (`Source.page_fact`), kept in `facts`
        self.facts = {}
        self.dataset = dataset
        self.batch_id = batch_id
        self.error = None
        self.digests = {}
        self._items = queue.Queue(maxsize=max(2, depth))
        self._pool = ThreadPoolExecutor(max_workers=max(1, depth - 1), thread_name_prefix="extract-page")
        self._thread = threading.Thread(target=self._run, name="extract-writer", daemon=True)
        self._thread.start()

    def _write_page(self, name, raw):
        """(digest, fact) of a page, once it is in place in the store."""
        digest = hashlib.sha256(raw).hexdigest()
        fact = self.scan(raw) if self.scan is not None else None
        self.store.write_bytes(batch_file(self.dataset, self.batch_id, name), raw)
        crash_point("extract.page_written")
        return digest, fact

    def _run(self):
        while True:
            group = self._waiting()
            done = group[-1] is None
            items = [item for item in group if item is not None]
            if items:
                self._save(items)
            if done:
                return

    def _waiting(self) -> list:
        """The next item, and every item already waiting behind it (None, the end, comes last)."""
        group = [self._items.get()]
        while group[-1] is not None:
            try:
                group.append(self._items.get_nowait())
            except queue.Empty:
                break
        return group

    def _save(self, items):
        """Wait for the items' pages to be in place, then save the latest state, which lists them all."""
        if self.error is not None:
            return  # drain: the fetching side stops at its next check
        try:
            for name, written, _ in items:
                if written is not None:
                    self.digests[name], fact = written.result()
                    if self.scan is not None:
                        self.facts[name] = fact
            state = items[-1][2]
            self.fill_digests(state["pages"])
            self.store.write_json(batch_file(self.dataset, self.batch_id, PROGRESS), state)
            for _ in items:
                crash_point("extract.page_done")  # each page of the group is listed in the state saved
        except Exception as exc:  # any failure must reach the fetching side, or put() would wait for ever
            self.error = exc

    def put(self, name, raw, state):
        self.check()
        written = self._pool.submit(self._write_page, name, raw) if name else None
        self._items.put((name, written, copy.deepcopy(state)))

    def fill_digests(self, pages):
        for page in pages:
            if page.get("sha256") is None:
                page["sha256"] = self.digests[page["file"]]

    def check(self):
        if self.error is not None:
            where = self.store.describe(layout.landing_batch(self.dataset, self.batch_id))
            raise ExtractError(f"cannot write landing files in {where}: {self.error}")

    def close(self, check=True):
        self._items.put(None)
        self._thread.join()
        self._pool.shutdown(wait=True)
        if check:
            self.check()
