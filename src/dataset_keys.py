"""What a DATASET_CONFIG entry fetches and which columns its table gets: `indicator`/`indicators`, `columns`, `rename`.

Validated here for `src.settings`, each problem one ConfigError line naming the dataset and the key.
The natural key (`schema.NATURAL_KEY`) is always kept, listed in `columns` or not: it is what makes
every fact one row. A `columns` list is exact: a field the API adds later is left out too.
"""

import re

from src.contracts import schema
from src.errors import ConfigError

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
INDICATOR_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
MAX_INDICATORS = 50
_ALLOWED = ", ".join(schema.CORE_COLUMNS)


def dataset_error(name, key, problem) -> ConfigError:
    return ConfigError(f"DATASET_CONFIG[{name!r}].{key}: {problem}")


def indicator_codes(name, entry) -> tuple:
    """The entry's indicator codes: `indicator` (one) or `indicators` (1 to MAX_INDICATORS distinct ones)."""
    if "indicator" in entry and "indicators" in entry:
        raise dataset_error(name, "indicators", "give indicator (one code) or indicators (a list of codes), not both")
    if "indicators" not in entry:
        indicator = entry.get("indicator")
        if indicator is None:
            raise dataset_error(name, "indicator", "missing (a GHO indicator code, or indicators: a list)")
        if not isinstance(indicator, str) or not INDICATOR_CODE.match(indicator):
            raise dataset_error(name, "indicator", f"{indicator!r} is not a GHO indicator code")
        return (indicator,)
    codes = entry["indicators"]
    if not isinstance(codes, list) or not 1 <= len(codes) <= MAX_INDICATORS:
        raise dataset_error(name, "indicators", f"must be a list of 1 to {MAX_INDICATORS} GHO indicator codes")
    seen = set()
    for code in codes:
        if not isinstance(code, str) or not INDICATOR_CODE.match(code):
            raise dataset_error(name, "indicators", f"{code!r} is not a GHO indicator code")
        if code.upper() in seen:  # GHO's codes are upper case; the same code twice would land its rows twice
            raise dataset_error(name, "indicators", f"{code!r} is listed twice")
        seen.add(code.upper())
    return tuple(codes)


def kept_columns(name, entry):
    """The staging columns the table keeps, in table order (the natural key always), or None for every one."""
    listed = entry.get("columns")
    if listed is None:
        return None
    if not isinstance(listed, list) or not all(isinstance(c, str) for c in listed):
        raise dataset_error(name, "columns", "must be a list of column names")
    for position, column in enumerate(listed):
        if column not in schema.CORE_COLUMNS:
            raise dataset_error(name, "columns", f"unknown column {column!r} (allowed: {_ALLOWED})")
        if column in listed[:position]:
            raise dataset_error(name, "columns", f"{column!r} is listed twice")
    return tuple(c for c in schema.CORE_COLUMNS if c in listed or c in schema.NATURAL_KEY)


def renames(name, entry, kept) -> tuple:
    """((staging column, new name), ...) in table order; new names are lower case, unique and clash with nothing."""
    wanted = entry.get("rename")
    if wanted is None:
        return ()
    if not isinstance(wanted, dict):
        raise dataset_error(name, "rename", "must be an object mapping column names to new names")
    chosen = {}
    for column, new in wanted.items():
        if column not in schema.CORE_COLUMNS:
            raise dataset_error(name, "rename", f"unknown column {column!r} (allowed: {_ALLOWED})")
        if kept is not None and column not in kept:
            raise dataset_error(name, "rename", f"renames {column!r}, which columns leaves out")
        new = _new_name(name, column, new)
        if new in chosen.values():
            first = next(c for c, n in chosen.items() if n == new)
            raise dataset_error(name, "rename", f"{new!r} is the new name of both {first!r} and {column!r}")
        chosen[column] = new
    return tuple((c, chosen[c]) for c in schema.CORE_COLUMNS if c in chosen)


def _new_name(name, column, new) -> str:
    if not isinstance(new, str) or not IDENTIFIER.match(new):
        raise dataset_error(
            name,
            "rename",
            f"new name {new!r} for {column!r} is not a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*, at most 63 "
            "characters)",
        )
    new = new.lower()  # as PostgreSQL folds an unquoted name, so a query can name it without quotes
    if new in schema.CORE_COLUMNS:
        raise dataset_error(name, "rename", f"new name {new!r} for {column!r} is the name of a GHO column")
    if new.startswith("_"):
        raise dataset_error(
            name,
            "rename",
            f"new name {new!r} for {column!r} is reserved (names starting with _ are gho-etl's own, such as "
            f"{schema.BATCH_COLUMN} and {schema.LOADED_AT_COLUMN})",
        )
    if new in schema.SYSTEM_COLUMN_NAMES:
        raise dataset_error(name, "rename", f"new name {new!r} for {column!r} is a PostgreSQL system column")
    return new


def probe_flag(name, entry) -> bool:
    """`probe`: whether the extract asks the API a cheap question before downloading (default true)."""
    probe = entry.get("probe", True)
    if not isinstance(probe, bool):
        raise dataset_error(name, "probe", f"{probe!r} must be true or false")
    return probe
