"""Paging an indicator so that the rows landed are provably the rows the source holds.

Keyset paging on Id. Every request asks for `$orderby=Id`, `$top=<page size>`,
`$count=true` and, after the first, `$filter=(<filter>) and Id gt <last Id
landed>`. Whatever the server does with its own paging (none, like GHO; a
nextLink chain with pages smaller, equal to or larger than `$top`; a hard cap on
rows per answer), the next request starts right after the last row we hold, so
a row that exists throughout is neither skipped nor repeated even when others
are added or deleted meanwhile (`$skip` would shift under a deletion). A
nextLink continues the request it came from and is followed until its chain
ends; only then is the next keyset request made.

Completeness is proven, not inferred:
- With a count (`@odata.count`, which GHO sends): the first answer's count is
  the batch's target, and every later answer must count exactly the rows not
  yet landed. A count that moves means the source changed while we paged: the
  batch starts over (`SourceChanged`). When the target is reached, one more
  request (`$top=0`) must count exactly the rows landed: that catches a
  deletion among rows already landed. An empty answer where the count says
  rows remain is GHO's known transient failure and is asked again.
- Without a count, a short page proves nothing: the end is two empty answers
  in a row to the request after the last row.

Loops cannot run away. Every row must carry an integer Id and Ids must ascend
strictly across the indicator's pages, so every answer that is not empty brings new
rows: a repeated page, a server ignoring the Id bound or `$skip` in its links,
rows out of order are each a clear failure. Empty answers are bounded too: a
nextLink already visited in its chain, a link longer than MAX_LINK_CHARS, or
more than MAX_EMPTY_PIECES empty pages in a row along a chain each fail. Every
answer with rows brings at least one of the count's rows and is followed by at
most MAX_EMPTY_PIECES + 1 empty ones (linked empty pages, then the empty end of
its chain), so a counted attempt needs at most (count + 1) x (MAX_EMPTY_PIECES
+ 2) + 1 requests; `_within_budget` fails one that makes more (a backstop: the
rules above stop it first). Without a count the backstop is
REQUESTS_WITHOUT_COUNT.

With GHO_PAGE_CONCURRENCY above 1 the rest of an indicator, after its first
answer, is paged in Id ranges side by side, each range by a pager of its own
as above (`ranges`).
"""

import hashlib
import logging
import threading

import requests

from src.contracts.landing import PageEntry, page_file
from src.errors import ExtractError, SourceChanged, TransientAnswer
from src.faultpoints import crash_point
from src.sources.gho_odata import ranges
from src.sources.gho_odata.paging_state import (  # noqa: F401  (part of this module's surface)
    PAGING,
    new_indicator_paging,
    new_paging_state,
    new_query,
    query_params,
    total_params,
)
from src.text import printable

log = logging.getLogger("gho_etl.extract")

REQUESTS_WITHOUT_COUNT = 100_000
MAX_EMPTY_PIECES = 3
MAX_LINK_CHARS = 8192


class KeysetPager:
    """Fetches the pages of one indicator; each accepted answer goes to `writer.put` with the state naming it.

    `state` is the indicator's paging (`new_indicator_paging`); `batch` is the state saved, which
    holds the list of pages: the same dict for a batch of one indicator, the batch's own of several
    (then each page entry names its indicator, `tag`).
    """

    def __init__(self, client, request, state, writer, bar, dataset_name, batch=None, tag=None, part=None):
        self.client = client
        self.request = request
        self.indicator = request["indicator"]
        self.indicator_url = client.indicator_url(self.indicator)
        self.state = state
        self.batch = state if batch is None else batch
        self.pages = self.batch["pages"]
        self.tag = tag
        self.writer = writer
        self.bar = bar
        self.dataset_name = dataset_name
        # An Id range of the indicator (`ranges.IdRange`, paged beside the others) or None: the whole of it.
        self.part = part
        self.lock = part.lock if part else threading.Lock()  # held from an answer's checks to its put
        # Digests of the URLs asked in the current nextLink chain (kept in memory only: the Id
        # order check still stops a loop that a resumed run no longer remembers).
        self._visited = set()

    def run(self):
        while self.state["step"] is not None:
            self.writer.check()
            self._within_budget()
            kind = self.state["step"]["kind"]
            if kind == "total":
                self._confirm_total()
            elif kind == "ranges":
                ranges.run_ranges(self)
            else:
                self._fetch(self.state["step"])

    def _fail(self, problem) -> ExtractError:
        return ExtractError(f"indicator {self.indicator}: {problem}")

    def _within_budget(self):
        count, made = self.state["count"], self.state["requests"]
        limit = REQUESTS_WITHOUT_COUNT if count is None else (count + 1) * (MAX_EMPTY_PIECES + 2) + 1
        if made >= limit:
            allowed = "the limit for a source without a count" if count is None else f"its count of {count} rows allows"
            raise self._fail(f"{made} requests and the batch is still not complete, more than {allowed}")

    # --- one keyset request, or one piece of its nextLink chain ---------------------
    def _fetch(self, step):
        url = step["url"] or self.indicator_url
        upto = self.part.upto if self.part else None
        params = None if step["url"] else query_params(self.request, step["after"], upto)
        if params is not None:
            self._visited = {_digest(requests.Request("GET", url, params=params).prepare().url)}
        page = self.client.get_answer(url, params, self.indicator, check=lambda answer: self._believable(answer, step))
        with self.lock:  # the state saved lists only pages put: pages of other ranges wait
            self._take(step, url, page)

    def _take(self, step, url, page):
        state, query = self.state, self.state["query"]
        state["requests"] += 1
        crash_point("extract.page_received")
        self._check_order(page)
        self._check_count(page)
        name = None
        if page.count:
            name = self.part.page_name(page.first_id) if self.part else page_file(len(self.pages))
            # sha256 stays None here: the writer computes it, off this thread.
            entry = PageEntry(name, page.count, first_id=page.first_id, last_id=page.last_id, indicator=self.tag)
            ranges.add_page(self.pages, entry.to_json(), in_order=self.part is not None)
            state["landed"] += page.count
            state["last_id"] = page.last_id
            query["rows"] += page.count
        state["step"] = self._next_step(step, url, page)
        if state["step"] is None and not self.pages:
            name = self._land_empty(page)
        self.writer.put(name, page.raw, self.batch, page.latest)
        self.bar.update(page.count, f"page {len(self.pages)}")
        log.debug(
            "%s: %d rows (%d so far, source count %s)",
            self.dataset_name,
            page.count,
            state["landed"],
            state["count"],
            extra={"dataset": self.dataset_name, "rows": page.count},
        )

    def _believable(self, page, step):
        """Raise TransientAnswer where an answer contradicts the count (retried, like GHO's empty answers)."""
        state = self.state
        if state["count"] is None:
            if page.count == 0 and page.source_count:
                raise TransientAnswer(f"the API answered no rows but counts {page.source_count}")
            if self.part is not None and page.source_count is None and not step["url"]:
                raise TransientAnswer("the API sent no @odata.count this time")  # it counted the indicator
            return
        if step["url"]:
            return  # a piece of a nextLink chain may be empty: the chain ends, the next request goes on
        if page.source_count is None:
            raise TransientAnswer("the API sent no @odata.count this time")
        remaining = state["count"] - state["landed"]
        if page.count == 0 and remaining > 0:
            raise TransientAnswer(f"the API answered no rows where its count says {remaining} remain")

    def _check_order(self, page):
        if page.ids_problem:
            raise self._fail(
                f"the API's answer cannot be paged by Id: {page.ids_problem} "
                "(keyset paging needs every row's integer Id, in ascending order for $orderby=Id)"
            )
        if self.part is not None:
            self.part.check_bounds(page)
        last = self.state["last_id"]
        if page.count and last is not None and page.first_id <= last:
            raise self._fail(
                f"the API sent rows from Id {page.first_id} again after rows up to Id {last} had landed "
                "(it repeats pages: it may ignore the Id bound in $filter, or $skip in its links)"
            )

    def _check_count(self, page):
        state, query = self.state, self.state["query"]
        if page.source_count is None:
            return
        if state["count"] is None:
            if state["landed"] == 0 and query["landed_before"] == 0:
                state["count"] = page.source_count  # the target of this attempt
            return
        counted_now = query["landed_before"] + page.source_count
        if counted_now != state["count"]:
            raise SourceChanged(f"the source counted {state['count']} rows, then {counted_now}")
        if state["landed"] + page.count > state["count"]:
            raise SourceChanged(f"the API sent more rows than its count of {state['count']}")

    def _next_step(self, step, url, page):
        state, query = self.state, self.state["query"]
        if page.next_link:
            return {"kind": "query", "after": step["after"], "url": self._link(url, page)}
        if state["count"] is not None:
            if state["landed"] >= state["count"]:
                # An Id range is proven by the indicator's own final count, over every range.
                return None if self.part else {"kind": "total"}
            state["query"] = new_query(state["landed"])
            if self.part is None and step["after"] is None and ranges.concurrency(self) > 1:
                return ranges.split(self)  # pages side by side, or, when that cannot help, the keyset step
            return {"kind": "query", "after": state["last_id"], "url": None}
        if query["rows"] == 0:
            query["empty_answers"] += 1
            if query["empty_answers"] >= 2:
                return None  # the end: two empty answers in a row after the last row
            query["empty_pieces"] = 0
            return {"kind": "query", "after": step["after"], "url": None}
        state["query"] = new_query(state["landed"])
        return {"kind": "query", "after": state["last_id"], "url": None}

    def _link(self, url, page) -> str:
        """The nextLink to follow, refused when it is foreign, too long, visited, or one empty page too many."""
        query = self.state["query"]
        if len(page.next_link) > MAX_LINK_CHARS:
            raise self._fail(
                f"the API's @odata.nextLink is {len(page.next_link)} characters long (at most {MAX_LINK_CHARS})"
            )
        target = self.client.follow(url, page.next_link, self.indicator)
        if _digest(target) in self._visited:
            raise self._fail(f"the API's @odata.nextLink leads back to a page it already sent ({printable(target)})")
        self._visited.add(_digest(target))
        query["empty_pieces"] = 0 if page.count else query["empty_pieces"] + 1
        if query["empty_pieces"] > MAX_EMPTY_PIECES:
            raise self._fail(f"the API's @odata.nextLinks led to {query['empty_pieces']} empty pages in a row")
        return target

    # --- the final count ------------------------------------------------------------
    def _confirm_total(self):
        state = self.state
        page = self.client.get_answer(
            self.indicator_url, total_params(self.request), self.indicator, check=_requires_count
        )
        state["requests"] += 1
        if page.count > page.source_count:
            raise SourceChanged(f"the API counts {page.source_count} rows but sent {page.count} in one answer")
        if page.source_count != state["landed"]:
            raise SourceChanged(f"the source counts {page.source_count} rows now, {state['landed']} landed")
        state["step"] = None
        name = self._land_empty(page) if not self.pages else None
        self.writer.put(name, page.raw, self.batch, page.latest)

    def _land_empty(self, page) -> str:
        """An empty batch keeps the answer that proved it empty, so transform has a page to read."""
        name = page_file(0)
        self.pages.append(PageEntry(file=name, rows=0, indicator=self.tag).to_json())
        return name


def _requires_count(page):
    if page.source_count is None:
        raise TransientAnswer("the API sent no @odata.count this time")


def _digest(url) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:32]
