"""A batch of a dataset's indicators: each one paged by Id and proven complete by its own count, in turn.

A dataset of one indicator asks for `{"indicator": code, ...}` and keeps the paging state of
`paging.new_paging_state`, exactly as batches did before datasets had several indicators, so
batches already landed resume. A dataset of several asks for `{"indicators": [codes], ...}` and
keeps, beside the batch's pages and totals, one paging state per indicator:

    {"version": 2, "attempt": 1, "pages": [...], "landed": 0, "count": null, "requests": 0,
     "indicators": [{"indicator": "WHOSIS_000001", "landed": 0, "last_id": null, ...}, ...]}

Each indicator is paged exactly like a batch of one (`paging.KeysetPager`, on its own Ids, with
its own count and final `$top=0` count); the next starts once it is proven complete. Every save
of `progress.json` holds the whole state, so a run killed anywhere resumes at the indicator and
the page it stopped at. `landed` and `requests` are the sums over the indicators, and `count`,
once every indicator is complete, the sum of their counts (None when one had none). A change of
any indicator's source starts the whole batch over (the extract discards every page).
"""

from src.errors import ExtractError
from src.sources.gho_odata.paging import PAGING, KeysetPager, new_indicator_paging, new_paging_state


def batch_request(base_url, dataset, page_size) -> dict:
    codes = dataset.indicators
    chosen = {"indicator": codes[0]} if len(codes) == 1 else {"indicators": list(codes)}
    return {"base_url": base_url, **chosen, "filter": dataset.filter, "page_size": page_size, "paging": PAGING}


def new_batch_state(request, attempt=1) -> dict:
    if "indicators" not in request:
        return new_paging_state(attempt)
    return {
        "version": 2,
        "attempt": attempt,
        "pages": [],
        "landed": 0,
        "count": None,
        "requests": 0,
        "indicators": [{"indicator": code, **new_indicator_paging()} for code in request["indicators"]],
    }


def fetch_batch(client, request, state, sink, bar, dataset_name) -> None:
    if "indicators" not in request:
        KeysetPager(client, request, state, sink, bar, dataset_name).run()
        return
    parts = state.get("indicators") or []
    if [part.get("indicator") for part in parts] != request["indicators"]:
        raise ExtractError(f"the paging state of {dataset_name}'s landing batch does not list its indicators")
    one = {key: value for key, value in request.items() if key != "indicators"}
    totals = _Totals(sink, state)
    for part in parts:
        if part["step"] is not None:
            request_of_one = dict(one, indicator=part["indicator"])
            KeysetPager(
                client, request_of_one, part, totals, bar, dataset_name, batch=state, tag=part["indicator"]
            ).run()


class _Totals:
    """The sink as one indicator's pager sees it: the batch's totals are summed before every save."""

    def __init__(self, sink, state):
        self.sink, self.state = sink, state

    def check(self):
        self.sink.check()

    def put(self, name, raw, state, read_fact):
        parts = state["indicators"]
        state["landed"] = sum(part["landed"] for part in parts)
        state["requests"] = sum(part["requests"] for part in parts)
        counts = [part["count"] for part in parts]
        complete = all(part["step"] is None for part in parts) and None not in counts
        state["count"] = sum(counts) if complete else None
        self.sink.put(name, raw, state, read_fact)
