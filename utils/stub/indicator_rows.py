"""The rows served for each indicator, and each query's matching rows encoded as JSON once.

Encoding once per query is what lets the stand-in keep up with the pipeline when it serves millions of
rows (the benchmark): every page of that query is then a slice of ready bytes.
"""

import threading
from bisect import bisect_right
from pathlib import Path

from utils.gho_samples import SampleLibrary, generate_rows
from utils.odata import apply_query
from utils.stub.query import fields_of, ordered_by_id
from utils.stub.wire import encode_json

# Served, generated, when there are neither samples nor --generate'd indicators: the shipped datasets.
SHIPPED_DATASETS = ("WHOSIS_000001", "WHOSIS_000015")
SHIPPED_ROWS = 12936
MAX_LEADING = 64  # answers of a few rows kept (each at most FEW_ROWS rows)
# Encoded rows kept across queries, oldest dropped first (the newest query's always kept): every indicator
# the stand-in prepared at start stays ready, so a run over many of them is not timed encoding them.
MAX_ENCODED_ROWS = 1_000_000


def _numeric(value) -> bool:
    """Whether an Id can be bisected: a number, not a bool, not NaN (NaN has no place in an order)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _has_id(ids, row) -> bool:
    try:
        return row.get("Id") in ids
    except TypeError:  # an unhashable Id
        return False


class IndicatorRows:
    """Indicator rows from the samples, generated ones and the ones set by tests, with their encodings.

    `lock` guards them; the state built on this class shares it for everything the handler threads share.
    """

    def __init__(self, samples_dir=None, generated=None, use_samples=True, vary_every=0):
        self.lock = threading.Lock()
        self.encoded = {}  # (code, $filter, $orderby) -> (rows object, rows encoded as JSON once, their Ids or None)
        self.leading = {}  # (code, query of a few rows) -> (rows object, the answer's rows)
        self.library = SampleLibrary(samples_dir) if use_samples else SampleLibrary(Path("/nonexistent"))
        self.indicators = {}  # code -> rows (overrides and generated data)
        for code, count in (generated or {}).items():
            self.indicators[code] = generate_rows(code, count, vary_every=vary_every)
        if not self.library.available and not self.indicators:
            for code in SHIPPED_DATASETS:
                self.indicators[code] = generate_rows(code, SHIPPED_ROWS)

    def rows(self, code):
        """The rows served for `code` (read from the samples the first time), or None for an unknown one."""
        with self.lock:
            if code in self.indicators:
                return self.indicators[code]
        if code in self.library.sources:
            rows = self.library.rows(code)
            with self.lock:
                return self.indicators.setdefault(code, rows)
        return None

    def codes(self):
        with self.lock:
            return sorted(set(self.indicators) | set(self.library.sources))

    def replace_rows(self, code, rows):
        """Serve these rows for `code`; its encodings go, so no answer serves the old rows."""
        with self.lock:
            self.indicators[code] = rows
            self.encoded = {query: cached for query, cached in self.encoded.items() if query[0] != code}
            self.leading = {query: cached for query, cached in self.leading.items() if query[0] != code}

    def delete_rows(self, code, ids) -> int:
        """Stop serving the rows of `code` with these Ids; return how many went."""
        rows = self.rows(code)
        if rows is None:
            raise KeyError(f"no indicator {code!r}")
        ids = set(ids)
        kept = [row for row in rows if not _has_id(ids, row)]
        self.replace_rows(code, kept)
        return len(rows) - len(kept)

    def insert_rows(self, code, rows) -> int:
        """Serve these rows of `code` too (a new indicator if there is none); return how many."""
        rows = list(rows)
        self.replace_rows(code, list(self.rows(code) or []) + rows)
        return len(rows)

    def encoded_query(self, code, rows, filter_text, orderby):
        """(rows matching $filter in $orderby order, each encoded as JSON once; their Ids when ordered by Id and
        all numbers, else None). Raises ODataError."""
        query = (code, filter_text or None, orderby or None)
        with self.lock:
            cached = self.encoded.get(query)
        if cached is None or cached[0] is not rows:
            base = {name: text for name, text in (("$filter", filter_text), ("$orderby", orderby)) if text}
            matched = apply_query(rows, base, fields_of(rows))
            ids = None
            if ordered_by_id(orderby):
                ids = [row.get("Id") for row in matched]
                if not all(_numeric(value) for value in ids):
                    ids = None
            cached = (rows, [encode_json(row) for row in matched], ids)
            with self.lock:
                self.encoded.pop(query, None)
                self.encoded[query] = cached
                self._drop_oldest_encodings()
        return cached[1], cached[2]

    def _drop_oldest_encodings(self):
        """Drop the oldest encodings until at most MAX_ENCODED_ROWS rows are kept, or only the newest is (under
        `lock`)."""
        kept = sum(len(encoded) for _, encoded, _ in self.encoded.values())
        while kept > MAX_ENCODED_ROWS and len(self.encoded) > 1:
            _, encoded, _ = self.encoded.pop(next(iter(self.encoded)))
            kept -= len(encoded)

    def leading_rows(self, code, rows, params, fields):
        """The answer to a query for a few rows (`$top` within FEW_ROWS), kept until the rows change: an
        indexed server answers the change probe's question without a sort, and so does the stand-in once it
        has been asked it."""
        query = (code, tuple(sorted(params.items())))
        with self.lock:
            cached = self.leading.get(query)
        if cached is None or cached[0] is not rows:
            cached = (rows, apply_query(rows, params, fields))
            with self.lock:
                self.leading = {key: value for key, value in self.leading.items() if key[0] != code or value[0] is rows}
                if len(self.leading) >= MAX_LEADING:
                    self.leading.pop(next(iter(self.leading)))
                self.leading[query] = cached
        return cached[1]

    def count_matching(self, code, rows, filter_text, keyset):
        """How many rows match $filter, from an encoding made already when there is one, else without encoding
        (a `$top=0` count request must not evict the keyset pages' encoding). Raises ODataError."""
        with self.lock:
            entries = list(self.encoded.items())
        for (cached_code, cached_filter, _), (cached_rows, encoded, ids) in entries:
            if cached_code != code or cached_rows is not rows:
                continue
            if cached_filter == (filter_text or None):
                return len(encoded)
            if keyset and ids is not None and cached_filter == keyset[0]:
                upper = len(ids) if keyset[2] is None else bisect_right(ids, keyset[2])
                return max(0, upper - bisect_right(ids, keyset[1]))
        if not filter_text:
            return len(rows)
        return len(apply_query(rows, {"$filter": filter_text}, fields_of(rows)))
