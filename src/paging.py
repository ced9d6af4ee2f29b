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

Loops cannot run away: every row must carry an integer Id and Ids must ascend
strictly across the whole batch (a repeated page, a server ignoring the Id
bound or `$skip` in its links, rows out of order: each is a clear failure), a
nextLink already visited in a chain is refused, and an attempt makes at most
count + 4 requests (REQUESTS_WITHOUT_COUNT without a count).
"""

import hashlib
import logging

import requests

from src.errors import ExtractError
from src.faultpoints import crash_point
from src.gho_client import Transient
from src.text import printable

log = logging.getLogger("gho_etl.extract")

PAGING = "keyset:Id"
REQUESTS_WITHOUT_COUNT = 100_000
# Requests an attempt may make beyond one per counted row: the final count and
# empty answers at the end of a nextLink chain.
_SPARE_REQUESTS = 4


class SourceChanged(Exception):
    """The source's rows changed while the batch was paged: start the batch over."""


def query_params(request, after=None) -> dict:
    """The keyset request for the rows after Id `after` (the first rows when None)."""
    params = {"$top": str(request["page_size"]), "$orderby": "Id", "$count": "true"}
    user_filter = request["filter"]
    if after is None:
        if user_filter:
            params["$filter"] = user_filter
    else:
        params["$filter"] = f"({user_filter}) and Id gt {int(after)}" if user_filter else f"Id gt {int(after)}"
    return params


def total_params(request) -> dict:
    """A request for the source's count alone."""
    params = {"$top": "0", "$count": "true"}
    if request["filter"]:
        params["$filter"] = request["filter"]
    return params


def new_progress(attempt=1) -> dict:
    """The paging state of a fresh attempt (kept in progress.json, so a killed run resumes it)."""
    return {
        "version": 2,
        "attempt": attempt,
        "pages": [],
        "landed": 0,
        "last_id": None,
        "count": None,
        "requests": 0,
        "step": {"kind": "query", "after": None, "url": None},
        "query": _new_query(0),
    }


def _new_query(landed_before) -> dict:
    return {"landed_before": landed_before, "rows": 0, "empty_answers": 0, "links": []}


class KeysetPager:
    """Fetches the pages of one attempt; each accepted answer goes to `writer.put` with the progress naming it."""

    def __init__(self, client, request, progress, writer, bar, dataset_name):
        self.client = client
        self.request = request
        self.indicator = request["indicator"]
        self.indicator_url = client.indicator_url(self.indicator)
        self.progress = progress
        self.writer = writer
        self.bar = bar
        self.dataset_name = dataset_name

    def run(self):
        while self.progress["step"] is not None:
            self.writer.check()
            self._within_budget()
            if self.progress["step"]["kind"] == "total":
                self._confirm_total()
            else:
                self._fetch(self.progress["step"])

    def _fail(self, problem) -> ExtractError:
        return ExtractError(f"indicator {self.indicator}: {problem}")

    def _within_budget(self):
        count, made = self.progress["count"], self.progress["requests"]
        limit = REQUESTS_WITHOUT_COUNT if count is None else count + _SPARE_REQUESTS
        if made >= limit:
            allowed = "the limit for a source without a count" if count is None else f"its count of {count} rows allows"
            raise self._fail(f"{made} requests and the batch is still not complete, more than {allowed}")

    # --- one keyset request, or one piece of its nextLink chain ---------------------
    def _fetch(self, step):
        progress, query = self.progress, self.progress["query"]
        url = step["url"] or self.indicator_url
        params = None if step["url"] else query_params(self.request, step["after"])
        if params is not None and not query["links"]:
            query["links"].append(requests.Request("GET", url, params=params).prepare().url)
        page = self.client.get_page(url, params, self.indicator, check=lambda answer: self._believable(answer, step))
        progress["requests"] += 1
        crash_point("extract.page_received")
        self._check_order(page)
        self._check_count(page)
        name = None
        if page.count:
            name = f"page-{len(progress['pages']):05d}.json"
            progress["pages"].append(
                {
                    "file": name,
                    "rows": page.count,
                    "sha256": _sha256(page.raw),
                    "first_id": page.first_id,
                    "last_id": page.last_id,
                }
            )
            progress["landed"] += page.count
            progress["last_id"] = page.last_id
            query["rows"] += page.count
        progress["step"] = self._next_step(step, url, page)
        if progress["step"] is None and not progress["pages"]:
            name = self._land_empty(page)
        self.writer.put(name, page.raw, progress)
        self.bar.update(page.count, f"page {len(progress['pages'])}")
        log.debug(
            "%s: %d rows (%d so far, source count %s)",
            self.dataset_name,
            page.count,
            progress["landed"],
            progress["count"],
            extra={"dataset": self.dataset_name, "rows": page.count},
        )

    def _believable(self, page, step):
        """Raise Transient for an answer that contradicts the source's count (retried, like GHO's empty answers)."""
        progress = self.progress
        if progress["count"] is None:
            if page.count == 0 and page.source_count:
                raise Transient(f"the API answered no rows but counts {page.source_count}")
            return
        if step["url"]:
            return  # a piece of a nextLink chain may be empty: the chain ends, the next request goes on
        if page.source_count is None:
            raise Transient("the API sent no @odata.count this time")
        remaining = progress["count"] - progress["landed"]
        if page.count == 0 and remaining > 0:
            raise Transient(f"the API answered no rows where its count says {remaining} remain")

    def _check_order(self, page):
        if page.ids_problem:
            raise self._fail(
                f"the API's answer cannot be paged by Id: {page.ids_problem} "
                "(keyset paging needs every row's integer Id, in ascending order for $orderby=Id)"
            )
        last = self.progress["last_id"]
        if page.count and last is not None and page.first_id <= last:
            raise self._fail(
                f"the API sent rows from Id {page.first_id} again after rows up to Id {last} had landed "
                "(it repeats pages: it may ignore the Id bound in $filter, or $skip in its links)"
            )

    def _check_count(self, page):
        progress, query = self.progress, self.progress["query"]
        if page.source_count is None:
            return
        if progress["count"] is None:
            if progress["landed"] == 0 and query["landed_before"] == 0:
                progress["count"] = page.source_count  # the target of this attempt
            return
        counted_now = query["landed_before"] + page.source_count
        if counted_now != progress["count"]:
            raise SourceChanged(f"the source counted {progress['count']} rows, then {counted_now}")
        if progress["landed"] + page.count > progress["count"]:
            raise SourceChanged(f"the API sent more rows than its count of {progress['count']}")

    def _next_step(self, step, url, page):
        progress, query = self.progress, self.progress["query"]
        if page.next_link:
            target = self.client.follow(url, page.next_link, self.indicator)
            if target in query["links"]:
                raise self._fail(
                    f"the API's @odata.nextLink leads back to a page it already sent ({printable(target)})"
                )
            query["links"].append(target)
            return {"kind": "query", "after": step["after"], "url": target}
        if progress["count"] is not None:
            if progress["landed"] >= progress["count"]:
                return {"kind": "total"}
            progress["query"] = _new_query(progress["landed"])
            return {"kind": "query", "after": progress["last_id"], "url": None}
        if query["rows"] == 0:
            query["empty_answers"] += 1
            if query["empty_answers"] >= 2:
                return None  # the end: two empty answers in a row after the last row
            query["links"] = []
            return {"kind": "query", "after": step["after"], "url": None}
        progress["query"] = _new_query(progress["landed"])
        return {"kind": "query", "after": progress["last_id"], "url": None}

    # --- the final count ------------------------------------------------------------
    def _confirm_total(self):
        progress = self.progress
        page = self.client.get_page(
            self.indicator_url, total_params(self.request), self.indicator, check=_requires_count
        )
        progress["requests"] += 1
        if page.source_count != progress["landed"]:
            raise SourceChanged(f"the source counts {page.source_count} rows now, {progress['landed']} landed")
        progress["step"] = None
        name = self._land_empty(page) if not progress["pages"] else None
        self.writer.put(name, page.raw, progress)

    def _land_empty(self, page) -> str:
        """An empty batch keeps the answer that proved it empty, so transform has a page to read."""
        name = "page-00000.json"
        self.progress["pages"].append({"file": name, "rows": 0, "sha256": _sha256(page.raw)})
        return name


def _requires_count(page):
    if page.source_count is None:
        raise Transient("the API sent no @odata.count this time")


def _sha256(raw) -> str:
    return hashlib.sha256(raw).hexdigest()
