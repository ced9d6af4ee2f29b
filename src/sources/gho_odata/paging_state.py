"""The paging state of one indicator, kept in progress.json, and the requests it asks next.

Keyset requests ask for `$orderby=Id`, `$top=<page size>`, `$count=true` and, after the first,
`$filter=(<filter>) and Id gt <last Id landed>`; the pages of an Id range (`ranges`) add
` and Id le <upper bound>` unless theirs is the last range, which is unbounded above.
"""

PAGING = "keyset:Id"


def keyset_filter(user_filter, after=None, upto=None):
    """`(<filter>) and Id gt <after> and Id le <upto>`, each part only when given; None when none is."""
    bounds = [f"Id gt {int(after)}"] if after is not None else []
    bounds += [f"Id le {int(upto)}"] if upto is not None else []
    if not bounds:
        return user_filter or None
    return " and ".join(([f"({user_filter})"] if user_filter else []) + bounds)


def query_params(request, after=None, upto=None) -> dict:
    """The keyset request for the rows after Id `after` (the first rows when None), up to Id `upto` if given."""
    params = {"$top": str(request["page_size"]), "$orderby": "Id", "$count": "true"}
    text = keyset_filter(request["filter"], after, upto)
    if text:
        params["$filter"] = text
    return params


def total_params(request) -> dict:
    """A request for the source's count alone."""
    params = {"$top": "0", "$count": "true"}
    if request["filter"]:
        params["$filter"] = request["filter"]
    return params


def new_paging_state(attempt=1) -> dict:
    """The paging state of a fresh attempt (kept in progress.json, so a killed run resumes it)."""
    return {"version": 2, "attempt": attempt, "pages": [], **new_indicator_paging()}


def new_indicator_paging(after=None) -> dict:
    """Where the paging of one indicator (or one Id range of it, after Id `after`) stands: rows landed, last
    Id, count, requests, next step."""
    return {
        "landed": 0,
        "last_id": after,
        "count": None,
        "requests": 0,
        "step": {"kind": "query", "after": after, "url": None},
        "query": new_query(0),
    }


def new_query(landed_before) -> dict:
    return {"landed_before": landed_before, "rows": 0, "empty_answers": 0, "empty_pieces": 0}
