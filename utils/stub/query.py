"""Reading a request's query beyond what utils/odata.py evaluates: $count, the fields rows have, the keyset bounds.

The keyset bounds matter because clients page with `$orderby=Id` and `$filter=Id gt N` (and, paging an Id
range, `Id gt N and Id le M`); recognising that shape lets the stand-in answer every page, of every range,
from one encoding of the query without the bounds.
"""

import re

from utils.gho_samples import FIELDS
from utils.odata import ODataError, tokenize

# `Id gt N` or `(<user filter>) and Id gt N`, each optionally followed by ` and Id le M`, exactly: the keyset
# pages the client asks for.
_UPPER = r"(?: and Id le (?P<upper>-?\d+))?"
_KEYSET_FILTER = re.compile(
    r"(?:\((?P<user>.*)\) and Id gt (?P<bound>-?\d+)|Id gt (?P<only>-?\d+))" + _UPPER, re.DOTALL
)


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
    """(user filter or None, N, M or None) when `text` is `Id gt N` or `(<user filter>) and Id gt N`, either
    optionally followed by ` and Id le M`; else None.

    The parentheses must enclose the whole user filter (`(A) or (B) and Id gt 5` is not that shape).
    """
    match = _KEYSET_FILTER.fullmatch(text or "")
    if not match:
        return None
    upper = None if match.group("upper") is None else int(match.group("upper"))
    if match.group("only") is not None:
        return None, int(match.group("only")), upper
    user = match.group("user")
    if not user.strip() or not _one_group(user):
        return None
    return user, int(match.group("bound")), upper


def join_keyset(user, lower, upper):
    """The $filter text of a user filter (or None) and the Id bounds (each None: none); None when empty."""
    parts = [f"({user})"] if user and (lower is not None or upper is not None) else [user] if user else []
    parts += [f"Id gt {lower}"] if lower is not None else []
    parts += [f"Id le {upper}"] if upper is not None else []
    return " and ".join(parts) or None


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
