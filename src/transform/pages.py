"""Reading one landing page: its bytes checked against the manifest, then its rows typed."""

import hashlib
import json

import pyarrow as pa
import pyarrow.compute as pc

from src.contracts import schema
from src.contracts.landing import batch_file, unpack_page
from src.errors import TransformError
from src.transform.arrow_page import NotFast, type_page
from src.transform.dedup import key_hashes
from src.transform.rules import records_to_frame, to_arrow


class UnlistedColumns(TransformError):
    """A page holds a field outside the GHO core that the batch's columns do not include yet."""


def conform(table: pa.Table, target: pa.Schema) -> pa.Table:
    """Give a page's table the batch's columns (a field absent from this page is null)."""
    unknown = set(table.column_names) - set(target.names)
    if unknown:
        raise UnlistedColumns(f"a landing page has columns the batch does not list: {sorted(unknown)}")
    arrays = [
        table.column(f.name) if f.name in table.column_names else pa.nulls(table.num_rows, f.type) for f in target
    ]
    return pa.Table.from_arrays(arrays, schema=target)


def page_records(where, raw) -> list:
    """The page's rows as Python objects: the json module, for what Arrow cannot read."""
    try:
        return json.loads(raw).get("value", [])
    except (ValueError, AttributeError) as exc:
        raise TransformError(f"landing page {where} is unreadable: {exc}") from None


class PageReader:
    """Reads, verifies and types the pages of one landing batch (called from worker threads)."""

    def __init__(self, store, dataset, batch_id, extra_columns, indicators=()):
        self.store, self.dataset, self.batch_id = store, dataset, batch_id
        self.extra_columns = extra_columns
        self.target = schema.arrow_schema(extra_columns)
        # The codes the batch asked for (any case): a row of another indicator is rejected.
        self.indicators = tuple(code.upper() for code in indicators)

    def read(self, page):
        """(where, bytes) of a page entry of the manifest; TransformError when it cannot be read."""
        key = batch_file(self.dataset, self.batch_id, page.file)
        where = self.store.describe(key)
        try:
            stored = self.store.read_bytes(key)
        except OSError as exc:
            raise TransformError(f"landing page {where} is unreadable: {exc.strerror}") from None
        try:
            return where, unpack_page(stored)
        except OSError as exc:  # pyarrow's word for a damaged or cut frame
            raise TransformError(f"landing page {where} is corrupted ({exc})") from None

    def __call__(self, page):
        """(typed table, its key hashes, rejected records with reasons, rows read)."""
        table, rejected, count = self._typed(page)
        table, foreign = self._own_rows(table, page)
        return table, key_hashes(table), rejected + foreign, count

    def _own_rows(self, table, page):
        """The rows of the indicator(s) the page was asked for, and the others as rejects with their reason."""
        wanted = (page.indicator.upper(),) if page.indicator else self.indicators
        if not wanted or not table.num_rows:
            return table, []
        codes = pc.utf8_upper(table.column("indicator_code"))
        own = pc.fill_null(pc.is_in(codes, value_set=pa.array(wanted)), False)
        if pc.all(own).as_py():
            return table, []
        reason = f"indicator_code is not one this batch asked for ({', '.join(wanted)})"
        foreign = table.filter(pc.invert(own)).to_pylist()
        return table.filter(own), [(record, f"{reason}: {record['indicator_code']}") for record in foreign]

    def _typed(self, page):
        where, raw = self.read(page)
        if page.sha256 and hashlib.sha256(raw).hexdigest() != page.sha256:
            raise TransformError(f"landing page {where} is corrupted (its checksum differs from the manifest's)")
        try:
            table = type_page(raw, self.extra_columns)
        except NotFast:
            pass
        else:
            if table.num_rows != page.rows:
                raise TransformError(f"landing page {where} holds {table.num_rows} rows, its manifest says {page.rows}")
            return table, [], page.rows
        records = page_records(where, raw)
        if len(records) != page.rows:
            raise TransformError(f"landing page {where} holds {len(records)} rows, its manifest says {page.rows}")
        frame, rejected = records_to_frame(records)
        return conform(to_arrow(frame), self.target), rejected, len(records)
