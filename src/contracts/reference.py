"""The reference tables in the target database: the indicator catalogue and the dimension values.

Written by `src.reference` (refreshed from the API), read by the labelled view each dataset's load
makes (`src.load.labels`), by `scripts/indicators.py` and by `status.py`:
- `gho_indicators`: the catalogue (`/api/Indicator`): code, name, language.
- `gho_dimensions`: the dimensions (`/api/Dimension`): code, title.
- `gho_dimension_values`: the values of each dimension a configured dataset uses
  (`/api/DIMENSION/{code}/DimensionValues`): dimension, code, title, parent dimension, code, title.
- `gho_reference`: what was fetched when (one row per resource, and one per dataset whose
  dimensions were looked up), so a refresh is due by age or when a new dataset appears.

Titles are stored as published with HTML entities decoded; codes are kept verbatim ("NA" is a code).
"""

import hashlib

from psycopg2 import sql

from src.contracts.catalog import relation_exists

INDICATORS_TABLE = "gho_indicators"
DIMENSIONS_TABLE = "gho_dimensions"
VALUES_TABLE = "gho_dimension_values"
STATE_TABLE = "gho_reference"
REFERENCE_TABLES = (INDICATORS_TABLE, DIMENSIONS_TABLE, VALUES_TABLE, STATE_TABLE)
LABELED_SUFFIX = "_labeled"
CATALOGUE = "Indicator"
DIMENSION_LIST = "Dimension"
# The state row of a dataset whose dimensions were looked up: "dataset:<name>".
DATASET_PREFIX = "dataset:"

_DDL = (
    """CREATE TABLE IF NOT EXISTS {indicators} (
    indicator_code text PRIMARY KEY,
    indicator_name text,
    language text,
    refreshed_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS {dimensions} (
    code text PRIMARY KEY,
    title text,
    refreshed_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS {values} (
    dimension text NOT NULL,
    code text NOT NULL,
    title text,
    parent_dimension text,
    parent_code text,
    parent_title text,
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dimension, code))""",
    """CREATE TABLE IF NOT EXISTS {state} (
    resource text PRIMARY KEY,
    rows integer NOT NULL,
    detail text,
    refreshed_at timestamptz NOT NULL DEFAULT now())""",
)


def values_resource(dimension: str) -> str:
    """The API path (below the base URL) of a dimension's values."""
    return f"DIMENSION/{dimension}/DimensionValues"


def labeled_view_name(table: str) -> str:
    """`<table>_labeled`; a table name too long for that (over 55 characters) gives `<its first 44>_<a hash
    of it>_labeled`, so two long names sharing a prefix still get views of their own."""
    if len(table) + len(LABELED_SUFFIX) <= 63:
        return table + LABELED_SUFFIX
    return f"{table[:44]}_{hashlib.sha256(table.encode()).hexdigest()[:10]}{LABELED_SUFFIX}"


def qualified(schema, table):
    return sql.Identifier(schema, table) if schema else sql.Identifier(table)


def names(schema) -> dict:
    """Each reference table's schema-qualified identifier, by role."""
    return {
        "indicators": qualified(schema, INDICATORS_TABLE),
        "dimensions": qualified(schema, DIMENSIONS_TABLE),
        "values": qualified(schema, VALUES_TABLE),
        "state": qualified(schema, STATE_TABLE),
    }


def ensure_tables(cursor, schema) -> None:
    """Create the reference tables when missing (the caller holds the "ddl" advisory lock)."""
    for statement in _DDL:
        cursor.execute(sql.SQL(statement).format(**names(schema)))


def tables_exist(cursor, schema) -> bool:
    return relation_exists(cursor, STATE_TABLE, schema)


def refreshed(cursor, schema) -> dict:
    """resource -> (rows, detail, refreshed_at) of what the last refreshes fetched."""
    cursor.execute(sql.SQL("SELECT resource, rows, detail, refreshed_at FROM {}").format(names(schema)["state"]))
    return {resource: (rows, detail, at) for resource, rows, detail, at in cursor.fetchall()}
