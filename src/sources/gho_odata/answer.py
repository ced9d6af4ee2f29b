"""One answer of the GHO OData API, validated: the bytes as they arrived and what paging needs of them."""

import itertools
import json
import operator
from dataclasses import dataclass, field
from typing import Optional

import msgspec

from src.errors import TransientAnswer
from src.sources.gho_odata.probe import latest_of, latest_row
from src.text import printable


@dataclass
class Answer:
    """One validated API answer: the exact bytes it arrived as and what paging needs of it.

    `ids_problem` is None when every row carries an integer `Id` and the Ids
    ascend strictly; otherwise it says what is wrong, for the caller to refuse.
    """

    raw: bytes
    count: int
    next_link: Optional[str] = None
    source_count: Optional[int] = None
    first_id: Optional[int] = None
    last_id: Optional[int] = None
    ids_problem: Optional[str] = None
    # The rows as paging decoded them (Id and Date); None when the json module read the body.
    dated_rows: Optional[list] = field(default=None, repr=False)

    def latest(self):
        """What the change probe keeps of these rows (`probe.latest_row`), from the rows paging already
        decoded: asked only for a dataset that is probed, by the page writer, off the fetching thread."""
        return latest_of(self.dated_rows) if self.dated_rows is not None else latest_row(self.raw)


class _RowKey(msgspec.Struct):
    Id: Optional[int] = None
    Date: Optional[str] = None  # for the change probe: one pass over the body serves paging and the probe


class _PageShape(msgspec.Struct):
    """What paging needs from a response; the rest of each row is checked to be JSON, not decoded."""

    value: list[_RowKey]
    next_link: Optional[str] = msgspec.field(default=None, name="@odata.nextLink")
    source_count: Optional[int] = msgspec.field(default=None, name="@odata.count")


_PAGE_DECODER = msgspec.json.Decoder(_PageShape)


def _ids_problem(ids, typed=False) -> Optional[str]:
    """Why `ids` cannot be paged by (None when all are integers in strictly ascending order).

    `typed`: msgspec decoded them as `Optional[int]`, so only None can be wrong
    in type. The common case runs in C (`in`, `map`); the loops below only run
    to name the row at fault.
    """
    if not typed or None in ids:
        for position, value in enumerate(ids):
            if not isinstance(value, int) or isinstance(value, bool):
                return f"row {position + 1} of a page has no integer Id"
    if all(map(operator.lt, ids, itertools.islice(ids, 1, None))):
        return None
    for position in range(1, len(ids)):
        if ids[position] <= ids[position - 1]:
            return f"its rows are not in ascending Id order (Id {ids[position]} after {ids[position - 1]})"
    return None


def _answer(body, value_ids, next_link, source_count, dated_rows=None, typed=False) -> Answer:
    if source_count is not None and (
        not isinstance(source_count, int) or isinstance(source_count, bool) or source_count < 0
    ):
        raise TransientAnswer("response's @odata.count is not a row count")
    if next_link is not None and not isinstance(next_link, str):
        raise TransientAnswer("response's @odata.nextLink is not a link")
    return Answer(
        raw=body,
        count=len(value_ids),
        next_link=next_link,
        source_count=source_count,
        first_id=value_ids[0] if value_ids else None,
        last_id=value_ids[-1] if value_ids else None,
        ids_problem=_ids_problem(value_ids, typed),
        dated_rows=dated_rows,
    )


def parse_answer(body: bytes) -> Answer:
    """Validate a response body as an OData page; raise TransientAnswer when it is not one.

    msgspec checks the JSON syntax and reads each row's Id (and Date, for the
    change probe) without building a Python object per other value, at
    several hundred MB/s; typing the rows is the transform's job. The few
    bodies it turns down (a lone surrogate escape, which GHO text may hold,
    rows that are not objects, no `value` list) and text that is not UTF-8 go
    through the json module, which accepts the first and words the error for
    the rest.
    """
    try:
        shape = _PAGE_DECODER.decode(body)
        if body.isascii() or _is_utf8(body):
            rows = shape.value
            ids = [row.Id for row in rows]
            return _answer(body, ids, shape.next_link, shape.source_count, rows, typed=True)
    except (msgspec.DecodeError, UnicodeDecodeError):  # the latter: text msgspec decodes that is not UTF-8
        pass
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise TransientAnswer(f"response is not valid JSON ({len(body)} bytes: {printable(body, 60)!r})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("value"), list):
        raise TransientAnswer("response JSON has no 'value' list")
    ids = [row.get("Id") if isinstance(row, dict) else None for row in payload["value"]]
    return _answer(body, ids, payload.get("@odata.nextLink"), payload.get("@odata.count"))


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
