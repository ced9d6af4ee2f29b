"""The change probe: one cheap request per indicator that says whether a download could bring anything new.

`probe` asks, within the dataset's own `$filter`, for
`$count=true&$top=1&$orderby=Date desc,Id desc&$select=Date,Id`: the rows the source counts and the row
with the latest `Date` (of those, the highest Id). An answer is believed only in the exact shape asked
for, so a server that ignores `$top` (more than one row) or `$select` (fields besides `Date` and `Id`), or
sends no `@odata.count`, no `Date` or no `Id`, gives None: the caller downloads. A server that ignores
`$orderby` answers its first row. What the next probe is compared with comes from the rows a download
landed (`latest_row` of every page, `facts_of` for the batch): what a faithful server answers for them,
so a server ignoring `$orderby` answers another row, unless the first row is also the latest; then no
facts are kept, since the two kinds of server cannot be told apart.
"""

import logging
from datetime import datetime
from typing import Optional

import msgspec

from src.errors import GhoEtlError
from src.text import printable

log = logging.getLogger("gho_etl.extract")

UNKNOWN = "?"  # the latest Date of a page one of whose rows has none (or one that is not a date)


class _DatedRow(msgspec.Struct):
    Date: Optional[str] = None
    Id: Optional[int] = None


class _DatedPage(msgspec.Struct):
    value: list[_DatedRow]


_DATES = msgspec.json.Decoder(_DatedPage)


def probe_params(request) -> dict:
    params = {"$count": "true", "$top": "1", "$orderby": "Date desc,Id desc", "$select": "Date,Id"}
    if request["filter"]:
        params["$filter"] = request["filter"]
    return params


def probe(client, request, codes) -> Optional[dict]:
    """{code: {"count", "date", "id"}} of every indicator, or None when one answer cannot be believed (or fails)."""
    facts = {}
    for code in codes:
        try:
            answer = client.get_answer(client.indicator_url(code), probe_params(request), code)
        except GhoEtlError as exc:  # a probe that fails costs nothing but the download it would have saved
            log.warning("%s: the change probe failed (%s); downloading", code, exc, extra={"indicator": code})
            return None
        fact, problem = _fact(answer.raw, answer.source_count)
        if problem:
            log.info("%s: the change probe's answer cannot be trusted (%s); downloading", code, problem)
            return None
        facts[code] = fact
    return facts


def _fact(raw, count):
    """({"count", "date", "id"}, None) from a probe's answer, or (None, why it cannot be believed)."""
    if count is None:
        return None, "no @odata.count"
    try:
        rows = msgspec.json.decode(raw)["value"]
    except (msgspec.DecodeError, UnicodeDecodeError, KeyError, TypeError):
        return None, "not an OData answer"
    if not isinstance(rows, list) or len(rows) != min(count, 1):
        return None, f"{len(rows) if isinstance(rows, list) else 'no'} rows for $top=1 of {count}"
    if not rows:
        return {"count": 0, "date": None, "id": None}, None
    row = rows[0]
    if not isinstance(row, dict) or {key for key in row if not key.startswith("@odata.")} != {"Date", "Id"}:
        return None, "fields beside Date and Id (the server ignores $select)"
    if _parsed(row["Date"]) is None or not isinstance(row["Id"], int) or isinstance(row["Id"], bool):
        return None, f"no usable Date and Id ({printable(repr(row), 60)})"
    return {"count": count, "date": row["Date"], "id": row["Id"]}, None


def latest_row(raw: bytes):
    """[Date, Id] of the row a faithful probe names among a landed page's rows: the latest Date, of it the
    highest Id (None for no rows, UNKNOWN when a row has no usable Date or Id)."""
    try:
        rows = _DATES.decode(raw).value
    except (msgspec.DecodeError, UnicodeDecodeError):
        return UNKNOWN
    return latest_of(rows)


def latest_of(rows):
    """`latest_row` of rows already decoded (each with `Date` and `Id` attributes)."""
    highest = {}  # Date -> the highest Id of its rows
    for row in rows:
        if row.Id is None:
            return UNKNOWN
        if row.Id > highest.get(row.Date, row.Id - 1):
            highest[row.Date] = row.Id
    best = None
    for date, row_id in highest.items():
        best = later(best, [date, row_id])
        if best == UNKNOWN:
            break
    return best


def later(first, second):
    """The later of two `latest_row`s (UNKNOWN wins: nothing can be said)."""
    if UNKNOWN in (first, second):
        return UNKNOWN
    if first is None or second is None:
        only = first or second
        return only if only is None or _parsed(only[0]) is not None else UNKNOWN
    one, two = _parsed(first[0]), _parsed(second[0])
    if one is None or two is None:
        return UNKNOWN
    return first if (one, first[1]) >= (two, second[1]) else second


def _parsed(text):
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def facts_of(pages) -> Optional[dict]:
    """What a faithful probe answers for the rows landed, per indicator (`pages` are (indicator, rows, first Id,
    latest_row) of every page); None when it cannot be said.

    A server that ignores `$orderby` answers its first row, not the latest: its answer differs from these
    facts, so it never gets a download skipped, unless its first row is also the one a faithful server
    names. Then the two cannot be told apart, and None keeps the next run from trusting the probe.
    """
    counts, first_ids, latest = {}, {}, {}
    for code, rows, first_id, fact in pages:
        counts[code] = counts.get(code, 0) + rows
        if rows:
            first_ids.setdefault(code, first_id)
            latest[code] = later(latest.get(code), fact)
    facts = {}
    for code, count in counts.items():
        if not count:
            facts[code] = {"count": 0, "date": None, "id": None}
            continue
        found = latest[code]
        if found in (None, UNKNOWN) or found[1] == first_ids[code]:
            return None
        facts[code] = {"count": count, "date": found[0], "id": found[1]}
    return facts or None
