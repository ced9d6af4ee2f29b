"""Reading a request's query beyond what utils/odata.py evaluates: $count, the fields rows have, the keyset bound.

The keyset bound matters because clients page with `$orderby=Id` and `$filter=Id gt N`; recognising that
shape lets the stand-in answer every page from one encoding of the query without the bound.
"""

import re

from utils.gho_samples import FIELDS
from utils.odata import ODataError, tokenize

# `Id gt N` or `(<user filter>) and Id gt N`, exactly: the keyset pages the client asks for.
_KEYSET_FILTER = re.compile(r"\((?P<user>.*)\) and Id gt (?P<bound>-?\d+)|Id gt (?P<only>-?\d+)", re.DOTALL)


def count_asked(params, ignored=False) -> bool:
    """Whether $count=true was asked (any case); another value than true/false is a bad query."""
    value = params.get("$count")
    if value is None or ignored:
        return False
    if value.lower() not in ("true", "false"):
        raise ODataError(f"$count must be true or false, not {value!r}")
    return value.lower() == "true"


def fields_of(rows) -> set:
    """The fields a query may name: GHO's, plus any extra field the first row has (rows set by a test)."""
    return set(FIELDS).union(*(row.keys() for row in rows[:1]))


def ordered_by_id(orderby) -> bool:
    """Whether $orderby asks for ascending Id, the order keyset paging relies on."""
    return (orderby or "").strip() in ("Id", "Id asc")


def split_keyset(text):
    """(user filter or None, N) when `text` is `Id gt N` or `(<user filter>) and Id gt N`, else None.

    The parentheses must enclose the whole user filter (`(A) or (B) and Id gt 5` is not that shape).
    """
    match = _KEYSET_FILTER.fullmatch(text or "")
    if not match:
        return None
    if match.group("only") is not None:
        return None, int(match.group("only"))
    user = match.group("user")
    if not user.strip() or not _one_group(user):
        return None
    return user, int(match.group("bound"))


def _one_group(text) -> bool:
    """Whether `(text)` is one parenthesised group: text's own parentheses balance and never close it."""
    try:
        tokens = tokenize(text)
    except ODataError:
        return False
    depth = 0
    for kind, value in tokens:
        if kind == "punct" and value in "()":
            depth += 1 if value == "(" else -1
            if depth < 0:
                return False
    return depth == 0
