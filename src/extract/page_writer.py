"""Writing landed answers and the paging state in order, in a thread, while the next answer downloads."""

import copy
import hashlib
import queue
import threading

from src.contracts import layout
from src.contracts.landing import PROGRESS, batch_file
from src.errors import ExtractError
from src.faultpoints import crash_point


class PageWriter:
    """The sink a source hands its answers to (`put`), for one landing batch.

    Each item is a page file (or None) and the paging state that lists it: the
    page is put in place before the state naming it, so a crash at any moment
    leaves a state that only lists pages in the store. At most `depth` pages
    wait in memory (2 for pages fetched one after another; one more than the
    pages fetched side by side, so none of them waits for the disk). The
    writer also computes each page's sha256 (off the fetching thread's path)
    and fills it into every state it writes, and into the fetching side's
    pages on close (`fill_digests`), and, given `scan`, what each page says
    for the change probe.
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
        self._thread = threading.Thread(target=self._run, name="extract-writer", daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            item = self._items.get()
            if item is None:
                return
            if self.error is not None:
                continue  # drain: the fetching side stops at its next check
            name, raw, state = item
            try:
                if name:
                    self.digests[name] = hashlib.sha256(raw).hexdigest()
                    if self.scan is not None:
                        self.facts[name] = self.scan(raw)
                self.fill_digests(state["pages"])
                if name:
                    self.store.write_bytes(batch_file(self.dataset, self.batch_id, name), raw)
                    crash_point("extract.page_written")
                self.store.write_json(batch_file(self.dataset, self.batch_id, PROGRESS), state)
                crash_point("extract.page_done")
            except Exception as exc:  # any failure must reach the fetching side, or put() would wait for ever
                self.error = exc

    def put(self, name, raw, state):
        self.check()
        self._items.put((name, raw, copy.deepcopy(state)))

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
        if check:
            self.check()
