"""Pages of one indicator side by side (GHO_PAGE_CONCURRENCY), each Id range paged by keyset as a whole one is.

A far API answers a page in little more than the time it takes to reach it, so a large indicator paged one
page after another spends its time waiting. Once the first keyset answer has given the count C and the first
page, the rest, when more than a page remains, is split by Id without another request: GHO's Ids of one
indicator are spread evenly (the samples' largest Id is within 3% of what their first 1,000 rows' density
says), so the first answer's Ids per row estimate where the rest ends, and (last Id landed, estimate] is cut
into up to GHO_PAGE_CONCURRENCY ranges, each a whole number of pages wide at that density (`_cuts`). Every
range but the last is `Id gt a and Id le b`; the last is `Id gt a` alone, so a wrong estimate costs speed,
never rows. Each range is paged exactly as a whole indicator is (`paging.KeysetPager`): keyset on Id, its
first answer's count its own target, every later count checked against it, Ids strictly ascending and inside
its bounds.

The plan (the ranges and each one's paging state) is part of the indicator's paging state in
progress.json, so a killed run resumes every range where it stopped, with whatever concurrency is set
then. Completeness is proven as for a whole indicator: the rows landed over the first page and every range
must add up to C, and one final `$top=0` count over the whole filter must equal them. Page entries go into
the batch's list in Id order (range order), so the manifest lists pages as paging one after another would.

A server that ignores the upper bound shows it by a row above it: the batch starts over, one page after
another (`RangesNotHonoured`, a SourceChanged that the extract's start over records in the new state's
`carry`).
"""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from src.contracts.landing import PAGE_SUFFIX
from src.errors import RangesNotHonoured, SourceChanged
from src.sources.gho_odata.paging_state import new_indicator_paging

log = logging.getLogger("gho_etl.extract")


class _Stopped(Exception):
    """Another range failed: this one stops at its next page."""


def concurrency(pager) -> int:
    carried = (pager.batch.get("carry") or {}).get("page_concurrency")
    return min(pager.client.page_concurrency, carried or pager.client.page_concurrency)


def split(pager) -> dict:
    """The step after the first keyset answer: the Id ranges, planned into the state, or the next keyset page."""
    state = pager.state
    after, left = state["last_id"], state["count"] - state["landed"]
    pages = -(-left // pager.request["page_size"])
    first = next((page["first_id"] for page in pager.pages if page.get("indicator") == pager.tag), None)
    if pages < 2 or first is None:
        return {"kind": "query", "after": after, "url": None}
    ids_per_row = (after - first + 1) / state["landed"]  # >= 1: Ids are distinct integers
    largest = after + round(left * ids_per_row)  # the estimate: the rest as dense as the first answer
    state["ranges"] = [
        {"above": above, "upto": upto, **new_indicator_paging(after=above)}
        for above, upto in _cuts(after, largest, pages, pager.request["page_size"] * ids_per_row, concurrency(pager))
    ]
    state["before_ranges"] = {
        "landed": state["landed"],
        "requests": state["requests"],
        "pages": len(pager.pages),  # the pages of the batch so far: what the ranges' page files are named after
        "estimated_largest_id": largest,
    }
    return {"kind": "ranges"}


def _cuts(after, largest, pages, ids_per_page, most):
    """[(above, upto), ...]: the Id ranges up to the estimated largest Id, the last one unbounded above.

    Each range spans the Ids of a whole number of pages at the first answer's density: as many pages
    each as the most ranges need, so paging them asks no more pages than paging in turn would, and
    they end together.
    """
    per_range = -(-pages // most)
    cuts = [after]
    for number in range(1, -(-pages // per_range)):
        cut = after + round(number * per_range * ids_per_page)
        if cuts[-1] < cut < largest:
            cuts.append(cut)
    return list(zip(cuts, cuts[1:] + [None]))


def add_page(pages, entry, in_order):
    """Add a page entry; `in_order`: before the later pages of the same indicator, so entries stay in Id order."""
    position = len(pages)
    if in_order:
        while (
            position > 0
            and pages[position - 1].get("indicator") == entry.get("indicator")
            and pages[position - 1].get("first_id") is not None
            and pages[position - 1]["first_id"] > entry["first_id"]
        ):
            position -= 1
    pages.insert(position, entry)


class IdRange:
    """One range's bounds, and what its pager shares with the others: the lock and the stop signal."""

    def __init__(self, part, lock, stop, pages_before):
        self.above, self.upto = part["above"], part["upto"]
        self.lock, self.stop = lock, stop
        self.pages_before = pages_before

    def page_name(self, first_id) -> str:
        """The file of a page of this range: named after the pages before the ranges and its first Id, so the
        same rows land under the same names whichever range answers first (the transform's content hash,
        and so "unchanged (same pages)", depends on them)."""
        return f"page-{self.pages_before:05d}-{int(first_id)}{PAGE_SUFFIX}"

    def check_bounds(self, page):
        if self.upto is not None and page.count and page.last_id > self.upto:
            raise RangesNotHonoured(
                f"the API sent Id {page.last_id} for Ids above {self.above} up to {self.upto}: it ignores the "
                "upper bound of an Id range, so the pages go one after another"
            )


class _RangeSink:
    """The sink as a range's pager sees it: the indicator's totals are summed before every save."""

    def __init__(self, sink, state, stop):
        self.sink, self.state, self.stop = sink, state, stop

    def check(self):
        if self.stop.is_set():
            raise _Stopped()
        self.sink.check()

    def put(self, name, raw, batch, read_fact):
        state, before = self.state, self.state["before_ranges"]
        state["landed"] = before["landed"] + sum(part["landed"] for part in state["ranges"])
        state["requests"] = before["requests"] + sum(part["requests"] for part in state["ranges"])
        self.sink.put(name, raw, batch, read_fact)


def run_ranges(pager):
    """Page every range not yet complete, up to GHO_PAGE_CONCURRENCY at once; then the final count is next."""
    state, stop = pager.state, threading.Event()
    sink = _RangeSink(pager.writer, state, stop)
    pagers = [
        type(pager)(  # a paging.KeysetPager, which builds on this module
            pager.client,
            pager.request,
            part,
            sink,
            pager.bar,
            pager.dataset_name,
            pager.batch,
            pager.tag,
            part=IdRange(part, pager.lock, stop, state["before_ranges"]["pages"]),
        )
        for part in state["ranges"]
        if part["step"] is not None
    ]
    errors = []
    if pagers:
        with ThreadPoolExecutor(max_workers=min(concurrency(pager), len(pagers)), thread_name_prefix="pages") as pool:
            futures = [pool.submit(_run, one, stop, errors) for one in pagers]
            try:
                for future in futures:
                    future.result()
            except BaseException:  # a stop (SIGTERM, Ctrl-C) here: every range ends after its current page
                stop.set()
                raise
    if errors:
        raise next((error for error in errors if isinstance(error, RangesNotHonoured)), errors[0])
    with pager.lock:
        counted = sum(part["count"] or 0 for part in state["ranges"]) + state["before_ranges"]["landed"]
        if counted != state["count"] or state["landed"] != state["count"]:
            raise SourceChanged(f"the source counted {state['count']} rows, then {counted} over its Id ranges")
        state["step"] = {"kind": "total"}


def _run(one, stop, errors):
    try:
        one.run()
    except _Stopped:
        pass
    except BaseException as exc:  # the first failure stops every range; run_ranges raises it
        errors.append(exc)
        stop.set()
