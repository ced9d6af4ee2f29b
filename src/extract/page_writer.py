"""Writing landed answers and the paging state in order, while the next answers download."""

import copy
import hashlib
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

from src.contracts import layout
from src.contracts.landing import PROGRESS, batch_file, pack_page
from src.errors import ExtractError
from src.faultpoints import crash_point

# Threads writing pages: enough to keep up with 32 pages fetched side by side, and fewer than the
# S3 client's connections (src/storage/s3.py), so a PUT never waits for one.
MAX_PAGE_WRITERS = 8


class PageWriter:
    """The sink a source hands its answers to (`put`), for one landing batch.

    Each item is a page file (or None) and the paging state that lists it. A
    page is hashed (sha256, of the answer), compressed (`landing.pack_page`) and written by a small pool
    of threads, so pages
    fetched side by side are written side by side (hashing, writing and fsync
    release the GIL; on object storage each is a PUT of its own). One thread
    saves the states, in the order put, each only once every page it lists is
    in place: a crash at any moment leaves a state that only lists pages in the
    store. At most `depth` pages are held from `put` until they are written
    (2 for pages fetched one after another; one more than the pages fetched
    side by side), and at most `depth` states wait. Given `scan`, the pool also
    keeps what each page says for the change probe (`facts`), asking the
    page's `read_fact` when the source gave one (it decoded the page already),
    else reading the page with `scan`. Digests are filled into every state
    saved, and into the fetching side's pages on close (`fill_digests`).
    """

    def __init__(self, store, dataset, batch_id, scan=None, depth=2):
        self.store = store
        self.scan = scan  # page -> what it says for the change probe (`Source.page_fact`), kept in `facts`
        self.facts = {}
        self.dataset = dataset
        self.batch_id = batch_id
        self.error = None
        self.digests = {}
        depth = max(2, depth)
        self._items = queue.Queue(maxsize=depth)
        self._unwritten = threading.BoundedSemaphore(depth)  # pages held until written: memory stays bounded
        self._pool = ThreadPoolExecutor(max_workers=min(depth - 1, MAX_PAGE_WRITERS), thread_name_prefix="extract-page")
        self._thread = threading.Thread(target=self._run, name="extract-writer", daemon=True)
        self._thread.start()

    def _write_page(self, name, raw, read_fact):
        """(digest, fact) of a page, once it is in place in the store."""
        try:
            digest = hashlib.sha256(raw).hexdigest()
            fact = None
            if self.scan is not None:
                fact = read_fact() if read_fact is not None else self.scan(raw)
            self.store.write_bytes(batch_file(self.dataset, self.batch_id, name), pack_page(raw))
            crash_point("extract.page_written")
            return digest, fact
        finally:
            self._unwritten.release()

    def _run(self):
        while True:
            item = self._items.get()
            if item is None:
                return
            if self.error is not None:
                continue  # drain: the fetching side stops at its next check
            name, written, state = item
            try:
                if written is not None:
                    self.digests[name], fact = written.result()
                    if self.scan is not None:
                        self.facts[name] = fact
                self.fill_digests(state["pages"])
                self.store.write_json(batch_file(self.dataset, self.batch_id, PROGRESS), state)
                crash_point("extract.page_done")
            except Exception as exc:  # any failure must reach the fetching side, or put() would wait for ever
                self.error = exc

    def put(self, name, raw, state, read_fact=None):
        self.check()
        written = None
        if name:
            self._unwritten.acquire()  # released by the page's write, which never waits for this thread
            written = self._pool.submit(self._write_page, name, raw, read_fact)
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
