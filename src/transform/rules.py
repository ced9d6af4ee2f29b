"""Typing and validating raw GHO records, row by row: the reference rules.

`records_to_frame` accepts anything the API might send and never raises: each
row is either typed into the staging columns or rejected with a reason. The
fast path (src/transform/arrow_page.py) must give exactly the same result on the
pages it accepts, and hands every other page to these rules.
"""

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa

from src.contracts import schema

# Numbers as GHO prints them in "Value": "1 234.5", "63.2". ASCII digits only,
# so the same pattern means the same thing to Python's re and to RE2 (Arrow).
GROUPING = "[ \u00a0\u202f]"  # literal characters: RE2 has no \\u escapes
_NUMBER = rf"-?[0-9]{{1,3}}(?:{GROUPING}[0-9]{{3}})+(?:\.[0-9]+)?|-?[0-9]+(?:\.[0-9]+)?"
_SPACE = "[ \t\u00a0\u202f]*"
_DASH = "[-\u2013]"
RANGE_PATTERN = (
    rf"^{_SPACE}(?P<point>{_NUMBER}){_SPACE}\[{_SPACE}(?P<low>{_NUMBER}){_SPACE}{_DASH}"
    rf"{_SPACE}(?P<high>{_NUMBER}){_SPACE}\]{_SPACE}$"
)
# A zone designator, only where it follows a time of day ("2020-02-15" ends in "-15" too).
_OFFSET_SUFFIX = r"(?P<time>\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"
INT32_MAX = 2**31 - 1


class RowRejects:
    """The first reason each row is rejected for, by position."""

    def __init__(self, size):
        self.reasons = np.full(size, None, dtype=object)

    def add(self, mask, reason):
        mask = np.asarray(mask, dtype=bool) & pd.isna(self.reasons)
        if mask.any():
            if callable(reason):
                for position in np.flatnonzero(mask):
                    self.reasons[position] = reason(position)
            else:
                self.reasons[mask] = reason

    @property
    def mask(self):
        return pd.notna(self.reasons)


def column_names(fields):
    """GHO field -> column, making any clash between fields' snake_case names unique."""
    names, used = {}, set()
    for field in fields:
        name = schema.snake_case(field)
        base, suffix = name, 2
        while name in used:
            name = f"{base[:60]}_{suffix}"
            suffix += 1
        names[field] = name
        used.add(name)
    return names


def _as_text(series: pd.Series) -> pd.Series:
    """Text as published; numbers and objects the API may send become strings."""

    def convert(value):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (dict, list)):
            return json.dumps(value, ensure_ascii=False, sort_keys=True)
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    # Built as a list: pandas would infer a string dtype and turn None into NaN.
    return pd.Series([convert(v) for v in series], index=series.index, dtype=object)


def is_unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _not_unicode(value) -> bool:
    """True for text (or nested JSON) that cannot be stored as UTF-8."""
    if isinstance(value, str):
        return not is_unicode(value)
    if isinstance(value, (dict, list)):
        return not is_unicode(json.dumps(value, ensure_ascii=False))
    return False


def _is_bool(series: pd.Series) -> np.ndarray:
    return series.map(lambda v: isinstance(v, bool)).to_numpy(dtype=bool)


def _to_float(series, column, rejects):
    present = series.notna().to_numpy()
    numbers = pd.to_numeric(series.where(~_is_bool(series)), errors="coerce").astype("float64")
    values = numbers.to_numpy()
    bad = present & ~np.isfinite(values)
    rejects.add(bad, lambda i: f"{column} {series.iloc[i]!r} is not a finite number")
    return numbers


def _to_int(series, column, rejects, limit):
    present = series.notna().to_numpy()
    numbers = pd.to_numeric(series.where(~_is_bool(series)), errors="coerce").astype("float64")
    values = numbers.to_numpy()
    ok = np.isfinite(values) & (np.abs(np.nan_to_num(values)) <= limit)
    ok &= np.equal(np.mod(np.nan_to_num(values), 1), 0)
    rejects.add(present & ~ok, lambda i: f"{column} {series.iloc[i]!r} is not an integer")
    result = pd.Series(np.where(ok, np.nan_to_num(values), 0).astype("int64"), index=series.index, dtype="Int64")
    result[~ok] = pd.NA
    return result


def to_timestamp(series, column, rejects, keep_wall_clock):
    """ISO 8601 text -> UTC timestamps.

    An instant (`date`) is converted exactly. A period boundary keeps its
    published wall-clock time, stored as UTC, so the calendar date never shifts.
    """
    text = _as_text(series)
    present = text.notna().to_numpy()
    parseable = text.where(present, None).astype("string")
    if keep_wall_clock:
        parseable = parseable.str.strip().str.replace(_OFFSET_SUFFIX, r"\g<time>", regex=True)
    parsed = pd.to_datetime(parseable, errors="coerce", utc=not keep_wall_clock, format="ISO8601")
    if keep_wall_clock:
        parsed = parsed.dt.tz_localize("UTC")
    parsed = parsed.dt.as_unit("us")
    bad = present & parsed.isna().to_numpy()
    rejects.add(bad, lambda i: f"{column} {series.iloc[i]!r} is not an ISO 8601 date-time")
    return parsed


def _parse_number_text(text: pd.Series) -> pd.Series:
    cleaned = text.str.replace(GROUPING, "", regex=True)
    return pd.to_numeric(cleaned, errors="coerce").astype("float64")


def _fill_from_ranges(frame: pd.DataFrame) -> None:
    """Where low/high are null but the value reads "63.2 [62.1-64.0]", take the numbers from it."""
    needs = (frame["low"].isna() | frame["high"].isna()) & frame["value"].notna()
    if not needs.any():
        return
    parts = frame.loc[needs, "value"].astype("string").str.extract(RANGE_PATTERN)
    parsed = parts.dropna(how="any")
    if parsed.empty:
        return
    index = parsed.index
    for column, part in (("low", "low"), ("high", "high"), ("numeric_value", "point")):
        missing = frame.loc[index, column].isna()
        target = index[missing.to_numpy()]
        frame.loc[target, column] = _parse_number_text(parsed.loc[target, part]).to_numpy()


def _raw_frame(records: list):
    """(the records as object columns named as staging names them, which records are objects)."""
    is_object = np.array([isinstance(record, dict) for record in records], dtype=bool)
    fields = list(dict.fromkeys(str(k) for record, ok in zip(records, is_object) if ok for k in record))
    names = column_names(fields)
    # Built column by column as object arrays: no type inference can fail on
    # whatever the API sends (pandas would choke on a lone surrogate).
    raw = pd.DataFrame(
        {
            names[field]: pd.Series(
                [record.get(field) if ok else None for record, ok in zip(records, is_object)], dtype=object
            )
            for field in fields
        },
        index=pd.RangeIndex(len(records)),
    )
    return raw, is_object


def _typed_frame(raw: pd.DataFrame, rejects: RowRejects):
    """(every staging column typed from `raw`, the extra columns); a value that cannot be typed is rejected."""
    frame = pd.DataFrame(index=raw.index)

    def source(column):
        if column in raw.columns:
            return raw[column].astype(object).where(raw[column].notna(), None)
        return pd.Series([None] * len(raw), index=raw.index, dtype=object)

    for column in schema.TEXT_COLUMNS:
        frame[column] = _as_text(source(column))
    frame["id"] = _to_int(source("id"), "id", rejects, 2**53)
    frame["time_dim"] = _to_int(source("time_dim"), "time_dim", rejects, INT32_MAX)
    for column in schema.FLOAT_COLUMNS:
        frame[column] = _to_float(source(column), column, rejects)
    for column in schema.INSTANT_COLUMNS:
        frame[column] = to_timestamp(source(column), column, rejects, keep_wall_clock=False)
    for column in schema.PERIOD_COLUMNS:
        frame[column] = to_timestamp(source(column), column, rejects, keep_wall_clock=True)
    extra = sorted(c for c in raw.columns if c not in schema.CORE_COLUMNS)
    for column in extra:
        frame[column] = _as_text(source(column))
    return frame, extra


def records_to_frame(records: list):
    """Type and validate raw GHO records.

    Returns (frame, rejects): the frame holds the valid rows with the staging
    columns (core first, then any new fields as text); rejects is a list of
    (record, reason) for the rest.
    """
    raw, is_object = _raw_frame(records)
    rejects = RowRejects(len(raw))
    rejects.add(~is_object, "record is not a JSON object")
    for column in raw.columns:
        broken = raw[column].map(_not_unicode).to_numpy(dtype=bool)
        if broken.any():
            rejects.add(broken, f"{column} is not valid Unicode text (it holds a lone surrogate)")
            raw.loc[broken, column] = None
    frame, extra = _typed_frame(raw, rejects)
    for column in schema.REQUIRED:
        blank = frame[column].map(lambda v: v is None or not v.strip()).to_numpy(dtype=bool)
        rejects.add(blank, f"missing {column}")
    for column in schema.TEXT_COLUMNS + extra:
        has_nul = frame[column].map(lambda v: v is not None and "\x00" in v).to_numpy(dtype=bool)
        rejects.add(has_nul, f"{column} contains a NUL byte, which PostgreSQL cannot store")
    key_bytes = sum(frame[c].map(lambda v: 0 if v is None else len(v.encode("utf-8"))) for c in schema.NATURAL_KEY_TEXT)
    rejects.add(
        (key_bytes > schema.NATURAL_KEY_MAX_BYTES).to_numpy(dtype=bool),
        lambda i: f"the natural key is {key_bytes.iloc[i]} bytes of text; PostgreSQL's unique index holds at most "
        f"{schema.NATURAL_KEY_MAX_BYTES} (a value such as spatial_dim far longer than any GHO code)",
    )

    bad = rejects.mask
    rejected = [(records[i], rejects.reasons[i]) for i in np.flatnonzero(bad)]
    frame = frame.loc[~bad].reset_index(drop=True)
    _fill_from_ranges(frame)
    frame = frame[list(schema.CORE_COLUMNS) + extra]
    return frame, rejected


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    extra = [c for c in frame.columns if c not in schema.CORE_COLUMNS]
    return pa.Table.from_pandas(frame, schema=schema.arrow_schema(extra), preserve_index=False)
