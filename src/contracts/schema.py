"""The staging schema: GHO fields, their snake_case columns and types.

Shared by transform (which produces these columns) and load (which creates
and checks the table), so the two can never disagree on a name or a type.
"""

import re

import pyarrow as pa

# column -> (arrow type, PostgreSQL type), in table order.
CORE_COLUMNS = {
    "id": (pa.int64(), "bigint"),
    "indicator_code": (pa.string(), "text"),
    "spatial_dim_type": (pa.string(), "text"),
    "spatial_dim": (pa.string(), "text"),
    "parent_location_code": (pa.string(), "text"),
    "parent_location": (pa.string(), "text"),
    "time_dim_type": (pa.string(), "text"),
    "time_dim": (pa.int32(), "integer"),
    "dim1_type": (pa.string(), "text"),
    "dim1": (pa.string(), "text"),
    "dim2_type": (pa.string(), "text"),
    "dim2": (pa.string(), "text"),
    "dim3_type": (pa.string(), "text"),
    "dim3": (pa.string(), "text"),
    "data_source_dim_type": (pa.string(), "text"),
    "data_source_dim": (pa.string(), "text"),
    "value": (pa.string(), "text"),
    "numeric_value": (pa.float64(), "double precision"),
    "low": (pa.float64(), "double precision"),
    "high": (pa.float64(), "double precision"),
    "comments": (pa.string(), "text"),
    "date": (pa.timestamp("us", tz="UTC"), "timestamp with time zone"),
    "time_dimension_value": (pa.string(), "text"),
    "time_dimension_begin": (pa.timestamp("us", tz="UTC"), "timestamp with time zone"),
    "time_dimension_end": (pa.timestamp("us", tz="UTC"), "timestamp with time zone"),
}

# The fields GHO publishes, in the API's order; each maps to the core column of its snake_case name.
GHO_FIELDS = (
    "Id",
    "IndicatorCode",
    "SpatialDimType",
    "SpatialDim",
    "ParentLocationCode",
    "ParentLocation",
    "TimeDimType",
    "TimeDim",
    "Dim1Type",
    "Dim1",
    "Dim2Type",
    "Dim2",
    "Dim3Type",
    "Dim3",
    "DataSourceDimType",
    "DataSourceDim",
    "Value",
    "NumericValue",
    "Low",
    "High",
    "Comments",
    "Date",
    "TimeDimensionValue",
    "TimeDimensionBegin",
    "TimeDimensionEnd",
)

NATURAL_KEY = (
    "indicator_code",
    "spatial_dim_type",
    "spatial_dim",
    "time_dim_type",
    "time_dim",
    "dim1",
    "dim2",
    "dim3",
    "data_source_dim",
)
# The natural key in the order its unique index sorts it: the columns that tell rows apart first. An
# indicator's rows share indicator_code and the dimension types, so an index led by them compares every
# pair of rows down to spatial_dim; led by spatial_dim (a few letters, sorted by their first bytes) and
# time_dim, most comparisons end at once, and a table's index builds in about half the time. Which
# rows are unique is the same in any order, and ON CONFLICT finds the index by its set of columns.
NATURAL_KEY_INDEX_ORDER = (
    "spatial_dim",
    "time_dim",
    "dim1",
    "dim2",
    "dim3",
    "data_source_dim",
    "indicator_code",
    "spatial_dim_type",
    "time_dim_type",
)
REQUIRED = ("indicator_code", "spatial_dim_type", "spatial_dim")
NATURAL_KEY_TEXT = tuple(c for c in NATURAL_KEY if CORE_COLUMNS[c][0] == pa.string())
# A btree index entry holds at most 2704 bytes on PostgreSQL's 8 KB pages; a row whose key text is
# longer could never be loaded (and every later load of its dataset would fail), so transform
# rejects it. The margin covers the entry's headers; real GHO keys are under 200 bytes.
NATURAL_KEY_MAX_BYTES = 2600
# PostgreSQL names its system columns so; a field of that name would break ADD COLUMN.
SYSTEM_COLUMN_NAMES = frozenset({"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid", "oid"})
# Columns a table may gain beyond the GHO core (PostgreSQL's hard limit is 1600, dropped ones included).
MAX_EXTRA_COLUMNS = 200
TEXT_COLUMNS = [name for name, (arrow, _) in CORE_COLUMNS.items() if arrow == pa.string()]
FLOAT_COLUMNS = ("numeric_value", "low", "high")
INSTANT_COLUMNS = ("date",)
# Calendar boundaries of the period a fact covers: their published wall-clock
# time is kept, so 2010-01-01T00:00:00+01:00 stays 2010-01-01 for a reader in UTC.
PERIOD_COLUMNS = ("time_dimension_begin", "time_dimension_end")
# Columns a field the API adds later is given: always text, so a type that
# changes between batches can never break a load.
EXTRA_ARROW_TYPE = pa.string()
EXTRA_PG_TYPE = "text"

# Metadata columns the load adds.
BATCH_COLUMN = "_batch_id"
LOADED_AT_COLUMN = "_loaded_at"

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_IDENTIFIER = re.compile(r"[^a-z0-9_]+")


def snake_case(field: str) -> str:
    """GHO field name -> column name: `SpatialDimType` -> `spatial_dim_type`.

    Any other field becomes a safe plain identifier, whatever the API sends.
    """
    name = _CAMEL_BOUNDARY.sub("_", field.strip()).lower()
    name = _NOT_IDENTIFIER.sub("_", name).strip("_") or "field"
    if name[0].isdigit() or name.startswith("_") or name in SYSTEM_COLUMN_NAMES:
        name = "f_" + name
    return name[:63]


def arrow_schema(extra_columns=()):
    fields = [pa.field(name, arrow) for name, (arrow, _) in CORE_COLUMNS.items()]
    fields += [pa.field(name, EXTRA_ARROW_TYPE) for name in extra_columns]
    return pa.schema(fields)


def pg_type(column: str) -> str:
    return CORE_COLUMNS[column][1] if column in CORE_COLUMNS else EXTRA_PG_TYPE


assert sorted(snake_case(f) for f in GHO_FIELDS) == sorted(CORE_COLUMNS)
