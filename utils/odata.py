"""A small OData query evaluator for the GHO stand-in: $filter, $select, $orderby, $top, $skip.

Supports what GHO users write: eq ne gt ge lt le, and, or, not, parentheses,
string/number/null/true/false literals, and contains/startswith/endswith.
Errors raise ODataError, which the stand-in turns into HTTP 400 as GHO does.
"""

import heapq
import re


class ODataError(ValueError):
    pass


_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_/.]*)|(?P<punct>[(),]))"
)
_COMPARISONS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a is not None and b is not None and a > b,
    "ge": lambda a, b: a is not None and b is not None and a >= b,
    "lt": lambda a, b: a is not None and b is not None and a < b,
    "le": lambda a, b: a is not None and b is not None and a <= b,
}
_FUNCTIONS = {
    "contains": lambda a, b: a is not None and b is not None and str(b).lower() in str(a).lower(),
    "startswith": lambda a, b: a is not None and b is not None and str(a).lower().startswith(str(b).lower()),
    "endswith": lambda a, b: a is not None and b is not None and str(a).lower().endswith(str(b).lower()),
}
_LITERALS = {"null": None, "true": True, "false": False}


# A $top this small is answered by a top-N pick rather than a sort of every row.
FEW_ROWS = 1000


def tokenize(text):
    """(kind, text) tokens of a $filter expression; raises ODataError on a character it cannot read."""
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ODataError(f"syntax error in $filter at position {position}: {text[position:position + 20]!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text, fields):
        self.tokens = tokenize(text)
        self.position = 0
        self.fields = fields

    def peek(self):
        return self.tokens[self.position] if self.position < len(self.tokens) else (None, None)

    def take(self):
        token = self.peek()
        self.position += 1
        return token

    def expect(self, value):
        kind, text = self.take()
        if text != value:
            raise ODataError(f"syntax error in $filter: expected {value!r}, found {text!r}")

    def keyword(self, word):
        kind, text = self.peek()
        if kind == "name" and text.lower() == word:
            self.position += 1
            return True
        return False

    def parse(self):
        predicate = self.or_expr()
        if self.position != len(self.tokens):
            raise ODataError(f"syntax error in $filter: unexpected {self.peek()[1]!r}")
        return predicate

    def or_expr(self):
        left = self.and_expr()
        while self.keyword("or"):
            right = self.and_expr()
            left = (lambda a, b: lambda row: a(row) or b(row))(left, right)
        return left

    def and_expr(self):
        left = self.not_expr()
        while self.keyword("and"):
            right = self.not_expr()
            left = (lambda a, b: lambda row: a(row) and b(row))(left, right)
        return left

    def not_expr(self):
        if self.keyword("not"):
            inner = self.not_expr()
            return lambda row: not inner(row)
        return self.comparison()

    def comparison(self):
        left = self.operand()
        kind, text = self.peek()
        if kind == "name" and text.lower() in _COMPARISONS:
            self.position += 1
            right = self.operand()
            compare = _COMPARISONS[text.lower()]

            def evaluate(row):
                try:
                    return compare(left(row), right(row))
                except TypeError:
                    return False

            return evaluate
        return lambda row: bool(left(row))

    def operand(self):
        kind, text = self.take()
        if kind is None:
            raise ODataError("syntax error in $filter: unexpected end")
        if text == "(":
            inner = self.or_expr()
            self.expect(")")
            return inner
        if kind == "string":
            value = text[1:-1].replace("''", "'")
            return lambda row: value
        if kind == "number":
            value = float(text) if any(c in text for c in ".eE") else int(text)
            return lambda row: value
        if kind == "name":
            lowered = text.lower()
            if lowered in _LITERALS:
                value = _LITERALS[lowered]
                return lambda row: value
            if lowered in _FUNCTIONS and self.peek()[1] == "(":
                self.take()
                first = self.operand()
                self.expect(",")
                second = self.operand()
                self.expect(")")
                function = _FUNCTIONS[lowered]
                return lambda row: function(first(row), second(row))
            if text not in self.fields:
                raise ODataError(f"could not find a property named '{text}'")
            return lambda row: row.get(text)
        raise ODataError(f"syntax error in $filter: unexpected {text!r}")


def compile_filter(text, fields):
    """Return a predicate row -> bool for an OData $filter expression."""
    return _Parser(text, set(fields)).parse()


def _sort_key(value):
    # None first, then numbers, then strings: a total order across mixed types.
    if value is None:
        return (0, 0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, value, "")
    return (2, 0, str(value))


def _order_clauses(text, fields):
    """[(field, descending), ...] of an $orderby (raises ODataError for a clause it cannot order by)."""
    clauses = []
    for clause in [c.strip() for c in text.split(",") if c.strip()]:
        parts = clause.split()
        direction = parts[1].lower() if len(parts) > 1 else "asc"
        if parts[0] not in fields or direction not in ("asc", "desc") or len(parts) > 2:
            raise ODataError(f"invalid $orderby clause {clause!r}")
        clauses.append((parts[0], direction == "desc"))
    return clauses


def _ordered(rows, clauses, first=None):
    """The rows in $orderby order (stable), or only the `first` of them when that is few: a top-N pick, the
    order a sort gives (heapq's nsmallest/nlargest are documented equal to sorted()[:n]), without sorting all."""
    directions = {descending for _, descending in clauses}
    if first is not None and first <= FEW_ROWS and len(directions) == 1:
        names = [name for name, _ in clauses]
        pick = heapq.nlargest if directions == {True} else heapq.nsmallest
        return pick(first, rows, key=lambda row: tuple(_sort_key(row.get(name)) for name in names))
    for name, descending in reversed(clauses):
        rows = sorted(rows, key=lambda row: _sort_key(row.get(name)), reverse=descending)
    return rows


def apply_query(rows, params, fields):
    """Apply $filter, $orderby, $skip, $top and $select; return the resulting rows."""
    fields = list(fields)
    if params.get("$filter"):
        predicate = compile_filter(params["$filter"], fields)
        rows = [row for row in rows if predicate(row)]
    skip = non_negative(params, "$skip", 0)
    top = non_negative(params, "$top", None)
    if params.get("$orderby"):
        rows = _ordered(rows, _order_clauses(params["$orderby"], fields), None if top is None else skip + top)
    rows = rows[skip:] if top is None else rows[skip : skip + top]
    if params.get("$select"):
        selected = [s.strip() for s in params["$select"].split(",") if s.strip()]
        unknown = [s for s in selected if s not in fields]
        if unknown:
            raise ODataError(f"could not find a property named '{unknown[0]}'")
        rows = [{name: row.get(name) for name in selected} for row in rows]
    return rows


def non_negative(params, name, default):
    """$skip or $top as an int (`default` when absent or empty); anything but a whole number >= 0 is a bad query."""
    if params.get(name) in (None, ""):
        return default
    try:
        value = int(params[name])
    except ValueError:
        raise ODataError(f"{name} must be a non-negative integer") from None
    if value < 0:
        raise ODataError(f"{name} must be a non-negative integer")
    return value
