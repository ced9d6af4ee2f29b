"""Typing a whole landing page at once with Arrow: the transform's fast path.

A page is parsed by Arrow's JSON reader (C++, no Python object per value) and
checked with vectorised rules. A page passes only if every row is valid under
the reference rules of src/transform/rules.py; then the result is the same table those
rules would give, only faster. Any page with something unusual (a row to
reject, a number sent as text, a field name clash, an escaped surrogate) is
handed to the reference rules whole, so rejects and their reasons always come
from one place.
"""

import io
import re

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from src.contracts import schema
from src.transform.rules import GROUPING, INT32_MAX, RANGE_PATTERN, RowRejects, column_names, to_timestamp

_SURROGATE_ESCAPE = re.compile(rb"\\[uU][dD][89a-fA-F]")
_CORE_FIELD_TYPES = {field: schema.CORE_COLUMNS[schema.snake_case(field)][0] for field in schema.GHO_FIELDS}
# Dates arrive as text and are parsed by the reference rules (on distinct values only).
for _field in ("Date", "TimeDimensionBegin", "TimeDimensionEnd"):
    _CORE_FIELD_TYPES[_field] = pa.string()
_CORE_FIELD_TYPES["TimeDim"] = pa.int64()
_PAGE_SCHEMA = pa.schema(
    [pa.field("value", pa.list_(pa.struct([pa.field(f, t) for f, t in _CORE_FIELD_TYPES.items()])))]
)
_PARSE_OPTIONS = pajson.ParseOptions(
    explicit_schema=_PAGE_SCHEMA, unexpected_field_behavior="infer", newlines_in_values=True
)


class NotFast(Exception):
    """This page needs the reference rules."""


def _any(mask) -> bool:
    return bool(pc.any(mask, skip_nulls=True).as_py() or False)


# Date-times already parsed, by (column, text): a batch repeats the same few
# publication dates and period boundaries on every page.
_PARSED_DATES = {}
_PARSED_DATES_LIMIT = 100_000


def _timestamps(array, column, keep_wall_clock):
    """Parse distinct values with the reference rules (once per process), then spread them back."""
    encoded = pc.dictionary_encode(array)
    distinct = encoded.dictionary.to_pylist()
    new = [text for text in distinct if (column, text) not in _PARSED_DATES]
    if new:
        rejects = RowRejects(len(new))
        parsed = to_timestamp(pd.Series(new, dtype=object), column, rejects, keep_wall_clock)
        if rejects.mask.any():
            raise NotFast(f"{column} holds a value that is not a date-time")
        if len(_PARSED_DATES) > _PARSED_DATES_LIMIT:
            _PARSED_DATES.clear()
        _PARSED_DATES.update(zip(((column, text) for text in new), parsed.tolist()))
    values = pa.array([_PARSED_DATES[(column, text)] for text in distinct], type=schema.CORE_COLUMNS[column][0])
    return pc.take(values, encoded.indices)


def _required_ok(array) -> bool:
    """Python's idea of blank (str.strip), applied to the few distinct values."""
    if array.null_count:
        return False
    return all(value.strip() for value in pc.unique(array).to_pylist())


def _fill_from_ranges(columns):
    """Vectorised twin of rules._fill_from_ranges."""
    low, high, value = columns["low"], columns["high"], columns["value"]
    needs = pc.and_(pc.or_(pc.is_null(low), pc.is_null(high)), pc.is_valid(value))
    if not _any(needs):
        return
    parts = pc.extract_regex(pc.if_else(needs, value, pa.scalar(None, pa.string())), RANGE_PATTERN)
    matched = pc.fill_null(pc.and_(needs, pc.is_valid(parts)), False)
    if not _any(matched):
        return
    for column, part in (("low", "low"), ("high", "high"), ("numeric_value", "point")):
        text = pc.if_else(matched, pc.struct_field(parts, part), pa.scalar(None, pa.string()))
        number = pc.cast(pc.replace_substring_regex(text, GROUPING, ""), pa.float64())
        current = columns[column]
        columns[column] = pc.if_else(pc.and_(matched, pc.is_null(current)), number, current)


def read_page_table(raw: bytes, parse_options) -> pa.Table:
    """A landing page as one Arrow row (its `value` a list), read in one block on the calling thread.

    The parsing threads run one page each, so Arrow's own threads would only compete with them.
    """
    return pajson.read_json(
        io.BytesIO(raw),
        read_options=pajson.ReadOptions(block_size=len(raw) + 64, use_threads=False),
        parse_options=parse_options,
    )


def _page_records(raw: bytes, has_escapes: bool) -> pa.StructArray:
    """The page's rows as one Arrow struct array; NotFast unless it is one object with a list of objects."""
    if has_escapes and _SURROGATE_ESCAPE.search(raw):
        raise NotFast("escaped surrogate")
    try:
        table = read_page_table(raw, _PARSE_OPTIONS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise NotFast(str(exc)) from None
    if table.num_rows != 1 or table.column("value").null_count:
        raise NotFast("not one object with a value list")
    records = pc.list_flatten(table.column("value")).combine_chunks()
    if records.null_count:
        raise NotFast("a record is not an object")
    return records


def _columns(records, extra_columns) -> dict:
    """column -> array for every staging column, as read (absent fields null); NotFast for an unexpected field."""
    fields = [records.type.field(i) for i in range(records.type.num_fields)]
    names = column_names([f.name for f in fields])
    if len(set(names.values())) != len(fields):
        raise NotFast("field names clash")
    size = len(records)
    columns = {}
    for index, field in enumerate(fields):
        column = names[field.name]
        array = records.field(index)
        if field.name in _CORE_FIELD_TYPES:
            if column not in schema.CORE_COLUMNS:
                raise NotFast("core field renamed")
        elif column in schema.CORE_COLUMNS or column not in extra_columns:
            raise NotFast(f"unexpected field {field.name}")
        elif pa.types.is_null(field.type):
            array = pa.nulls(size, pa.string())
        elif not pa.types.is_string(field.type):
            raise NotFast(f"{field.name} is not text")
        columns[column] = array
    for column, (arrow_type, _) in schema.CORE_COLUMNS.items():
        columns.setdefault(column, pa.nulls(size, arrow_type))
    for column in extra_columns:
        columns.setdefault(column, pa.nulls(size, pa.string()))
    return columns


def _check_values(columns, extra_columns, may_hold_nul: bool) -> None:
    """NotFast unless every value passes the reference rules as it is (`time_dim` is narrowed here)."""
    if _any(pc.greater(pc.abs(columns["id"]), 2**53)):
        raise NotFast("id out of range")
    time_dim = columns["time_dim"]
    if _any(pc.greater(pc.abs(time_dim), INT32_MAX)):
        raise NotFast("time_dim out of range")
    columns["time_dim"] = pc.cast(time_dim, pa.int32())
    for column in schema.FLOAT_COLUMNS:
        if _any(pc.invert(pc.is_finite(columns[column]))):
            raise NotFast(f"{column} not finite")
    for column in schema.REQUIRED:
        if not _required_ok(columns[column]):
            raise NotFast(f"{column} blank")
    key_bytes = None
    for column in schema.NATURAL_KEY_TEXT:
        size = pc.fill_null(pc.binary_length(columns[column]), 0)
        key_bytes = size if key_bytes is None else pc.add(key_bytes, size)
    if _any(pc.greater(key_bytes, schema.NATURAL_KEY_MAX_BYTES)):
        raise NotFast("natural key too long")
    if may_hold_nul:
        for column in schema.TEXT_COLUMNS + list(extra_columns):
            if _any(pc.match_substring(columns[column], "\x00")):
                raise NotFast(f"{column} holds a NUL byte")


def type_page(raw: bytes, extra_columns) -> pa.Table:
    """The page's rows typed as staging (core columns, then `extra_columns`); NotFast if it cannot."""
    # Looking for one byte runs at memory speed (a page seldom holds a backslash);
    # the regex, like a search for two bytes, holds the GIL for milliseconds.
    has_escapes = raw.find(b"\\") != -1
    columns = _columns(_page_records(raw, has_escapes), extra_columns)
    # A NUL reaches a value only as a \u0000 escape or as a raw byte (which JSON forbids in text).
    _check_values(columns, extra_columns, may_hold_nul=has_escapes or raw.find(b"\x00") != -1)
    for column in schema.INSTANT_COLUMNS:
        columns[column] = _timestamps(columns[column], column, keep_wall_clock=False)
    for column in schema.PERIOD_COLUMNS:
        columns[column] = _timestamps(columns[column], column, keep_wall_clock=True)
    _fill_from_ranges(columns)
    target = schema.arrow_schema(extra_columns)
    return pa.Table.from_arrays([columns[name] for name in target.names], schema=target)
