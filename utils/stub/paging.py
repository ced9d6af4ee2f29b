"""An indicator's data answered as the mode says: $count, $skip/$top, the keyset fast path, caps and nextLinks.

Large indicators are served from rows encoded once per query (utils/stub/indicator_rows.py), so the
stand-in keeps up with the pipeline when it serves millions of rows (the benchmark). Keyset pages
(`$orderby=Id` with `$filter=Id gt N` or `(<filter>) and Id gt N`, optionally `... and Id le M`) are
answered from the encoding of the query without the bounds, cut after the last Id <= N (and at the last
Id <= M), so paging a million rows, in one Id range or several at once, stays cheap.
"""

from bisect import bisect_right
from urllib.parse import urlencode

from utils.odata import FEW_ROWS, ODataError, apply_query, non_negative
from utils.stub.query import count_asked, fields_of, join_keyset, ordered_by_id, split_keyset
from utils.stub.wire import context_url, encode_json, invalid_query_payload


class DataAnswer:
    """The answer to one /api/<CODE> request, under the mode as it was when the request came."""

    def __init__(self, state, resource, split, origin):
        self.state = state
        self.resource = resource
        self.split = split  # the request URL, urlsplit
        self.origin = origin  # http://host:port of the stand-in
        self.mode = state.modes.now()

    def answer(self, rows, raw):
        """(status, body, @odata.count or None) for these rows and the query parameters `raw`."""
        params, keyset = self._as_the_mode_reads(raw)
        try:
            counted = count_asked(params, self.mode["no_count"])
            skip = non_negative(params, "$skip", 0)
            top = non_negative(params, "$top", None)
            items, start, encoded, total = self._rows_asked(rows, params, keyset, top)
        except ODataError as exc:
            return 400, encode_json(invalid_query_payload(exc)), None
        count = total if counted else None
        begin = start + skip
        end = len(items) if top is None else min(len(items), begin + top)
        end, link = self._paged(raw, begin, end, skip, top)
        chosen = items[begin:end]
        if not encoded:
            chosen = [encode_json(row) for row in chosen]
        head = {"@odata.context": context_url(self.origin, self.resource)}
        if count is not None:
            head["@odata.count"] = count
        # One join of the parts: each `+` of a page's megabytes would copy them all again.
        parts = [encode_json(head)[:-1], b', "value": [', b", ".join(chosen), b"]"]
        if link is not None:
            parts += [b', "@odata.nextLink": ', encode_json(link)]
        return 200, b"".join(parts + [b"}"]), count

    def _as_the_mode_reads(self, raw):
        """(the parameters left once the mode has ignored some, the keyset bounds or None)."""
        params = dict(raw)
        keyset = split_keyset(params.get("$filter"))
        if keyset and (self.mode["ignore_keyset"] or self.mode["ignore_upper_bound"]):
            user, lower, upper = keyset
            lower = None if self.mode["ignore_keyset"] else lower
            upper = None if self.mode["ignore_upper_bound"] else upper
            params.pop("$filter")
            if join_keyset(user, lower, upper):
                params["$filter"] = join_keyset(user, lower, upper)
            keyset = (user, lower, upper) if lower is not None else None
        for name in ("skip", "orderby", "select", "top"):
            if self.mode[f"ignore_{name}"]:
                params.pop(f"${name}", None)
        return params, keyset

    def _rows_asked(self, rows, params, keyset, top):
        """(the rows matching $filter in $orderby order, the index of the first to serve, whether they are encoded
        JSON already, how many match). A count request (`$top=0`) encodes nothing. Raises ODataError."""
        if top == 0 and not params.get("$select"):
            apply_query([], {"$orderby": params.get("$orderby")}, fields_of(rows))  # a bad $orderby is still a 400
            total = self.state.count_matching(self.resource, rows, params.get("$filter"), keyset)
            return [], 0, True, total
        items, start, encoded = self._matched(rows, params, keyset)
        return items, start, encoded, len(items) - start

    def _matched(self, rows, params, keyset):
        """(the rows matching $filter in $orderby order, the index of the first to serve, whether they are
        encoded JSON already). Raises ODataError."""
        if params.get("$select"):
            fields = fields_of(rows)
            base = {name: params[name] for name in ("$filter", "$orderby", "$select") if params.get(name)}
            first = _few_asked(params)
            if first is not None:  # the change probe's question: a few rows, and the count of all
                leading = self.state.leading_rows(self.resource, rows, dict(base, **{"$top": str(first)}), fields)
                return (
                    _Leading(leading, self.state.count_matching(self.resource, rows, params.get("$filter"), None)),
                    0,
                    False,
                )
            return apply_query(rows, base, fields), 0, False
        orderby = params.get("$orderby")
        if keyset and ordered_by_id(orderby):
            user, bound, upper = keyset
            try:
                encoded, ids = self.state.encoded_query(self.resource, rows, user, orderby)
            except ODataError:
                ids = None  # the whole filter answers with its own error
            if ids is not None:
                if upper is not None:
                    encoded = _Prefix(encoded, bisect_right(ids, upper))
                return encoded, min(bisect_right(ids, bound), len(encoded)), True
        return self.state.encoded_query(self.resource, rows, params.get("$filter"), orderby)[0], 0, True

    def _paged(self, raw, begin, end, skip, top):
        """(where the answer ends, its nextLink or None): a cap cuts without a link; server paging cuts with one."""
        link = None
        page = self.mode["max_page_size"]
        if self.mode["cap"] is not None:
            end = min(end, begin + self.mode["cap"])  # a hard cap: never more, never a link
        elif page:
            rest = None
            if end - begin > page:
                # Server-driven paging, as OData services do: a page and a link to the rest.
                end = begin + page
                rest = dict(raw, **{"$skip": str(skip + page)})
                if top is not None:
                    rest["$top"] = str(top - page)
                link = self._link(urlencode(rest))
            if self.mode["cycle_links"]:
                link = self._cycle(raw, rest, link)
        return end, link

    def _link(self, query):
        """A nextLink to this resource with `query`, in the mode's link style and on its base."""
        if self.mode["link_style"] == "relative":
            return f"{self.split.path.rstrip('/').rsplit('/', 1)[-1]}?{query}"
        if self.mode["next_link_base"]:
            return f"{self.mode['next_link_base']}/{self.resource}?{query}"
        return f"{self.origin}{self.split.path}?{query}"

    def _cycle(self, raw, rest, link):
        """cycle_links: the second piece of a chain links back to the first (A -> B -> A ...)."""
        modes = self.state.modes
        with modes.lock:
            parent = modes.chain_parents.get((self.resource, tuple(sorted(raw.items()))))
            if parent is None and rest is not None:
                modes.chain_parents[(self.resource, tuple(sorted(rest.items())))] = self._link(self.split.query)
        return parent if parent is not None else link


def _few_asked(params):
    """How many rows the answer can hold at most when that is few ($skip + $top), else None."""
    top = non_negative(params, "$top", None)
    if top is None:
        return None
    first = non_negative(params, "$skip", 0) + top
    return first if first <= FEW_ROWS else None


class _Leading(list):
    """The first rows of an ordered answer, with the length of the whole: what a small $top can be served from
    (every slice an answer takes of it ends within $skip + $top)."""

    def __init__(self, first, total):
        super().__init__(first)
        self.total = total

    def __len__(self):
        return self.total


class _Prefix:
    """The first `stop` rows of an encoded query, without copying the list (a million references, for every
    page of an Id range): an answer only takes its length and its page's slice (no index, no iteration)."""

    def __init__(self, items, stop):
        self.items, self.stop = items, stop

    def __len__(self):
        return self.stop

    def __getitem__(self, part: slice):
        start, stop, step = part.indices(self.stop)
        return self.items[start:stop:step]
