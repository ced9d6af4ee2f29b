"""A dataset's choice of columns and renames, loaded into a real PostgreSQL: exactly those columns, the key kept.

Changing the choice later: a column added to `columns` is added to the table and filled, a column
left out stays in the table untouched, and a rename of a column the table already has is refused
with the statement that migrates it.
"""

import pytest

from src.contracts import schema
from tests.pipeline_checks import run_pipeline
from utils.gho_samples import generate_rows

CODE = "GEN_COLS"
ROWS = 900
CHOSEN = {
    "indicator": CODE,
    "table": "chosen",
    "columns": ["numeric_value", "low", "high"],
    "rename": {"spatial_dim": "country", "time_dim": "year", "numeric_value": "years"},
}
KEPT = [
    ("indicator_code", "text"),
    ("spatial_dim_type", "text"),
    ("country", "text"),
    ("time_dim_type", "text"),
    ("year", "integer"),
    ("dim1", "text"),
    ("dim2", "text"),
    ("dim3", "text"),
    ("data_source_dim", "text"),
    ("years", "double precision"),
    ("low", "double precision"),
    ("high", "double precision"),
    ("_batch_id", "text"),
    ("_loaded_at", "timestamp with time zone"),
]


def _columns(db, table="chosen") -> list:
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s "
            "ORDER BY ordinal_position",
            [table],
        )
        return cursor.fetchall()


def _unique_index_columns(db, table="chosen") -> list:
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisunique "
            "ORDER BY array_position(i.indkey::int[], a.attnum::int)",
            [table],
        )
        return [name for (name,) in cursor.fetchall()]


def _rows(db, query):
    with db.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchall()


def _run(make_settings, entry, name="chosen"):
    outcomes = run_pipeline(make_settings({name: entry}))
    assert [o.ok for o in outcomes] == [True, True, True], [o.error for o in outcomes]
    return outcomes


@pytest.mark.parametrize("mode", ["merge", "replace", "append"])
def test_columns_and_renames_make_exactly_these_columns_and_keep_the_natural_key(make_settings, stub, db, mode):
    served = generate_rows(CODE, ROWS)
    stub.set_rows(CODE, served)
    outcomes = _run(make_settings, dict(CHOSEN, mode=mode))
    assert outcomes[2].rows_written == ROWS
    assert _columns(db) == KEPT
    # Exactly the natural key's columns, under their new names, in the index's order (the telling ones first).
    assert sorted(schema.NATURAL_KEY_INDEX_ORDER) == sorted(schema.NATURAL_KEY)
    key = [{"spatial_dim": "country", "time_dim": "year"}.get(c, c) for c in schema.NATURAL_KEY_INDEX_ORDER]
    assert _unique_index_columns(db) == key
    first = min(served, key=lambda r: r["Id"])
    assert _rows(
        db,
        f"SELECT country, year, years FROM chosen WHERE country = '{first['SpatialDim']}' "
        f"AND year = {first['TimeDim']} AND dim1 = '{first['Dim1']}'",
    ) == [(first["SpatialDim"], first["TimeDim"], first["NumericValue"])]
    assert _run(make_settings, dict(CHOSEN, mode=mode))[2].rows_written == 0  # unchanged: nothing rewritten

    stub.set_rows(CODE, generate_rows(CODE, ROWS, vary_every=9))  # every 9th value revised upstream
    written = _run(make_settings, dict(CHOSEN, mode=mode))[2].rows_written
    assert written == {"merge": ROWS // 9, "replace": ROWS, "append": 0}[mode]
    assert _rows(db, "SELECT count(*) FROM chosen") == [(ROWS,)]


def test_a_field_the_api_adds_is_kept_without_columns_and_left_out_with_them(make_settings, stub, db):
    stub.set_rows(CODE, [dict(row, Source="survey") for row in generate_rows(CODE, 30)])
    _run(make_settings, {"indicator": CODE, "table": "every"}, name="every")
    _run(make_settings, CHOSEN)
    assert ("source", "text") in _columns(db, "every")
    assert _columns(db) == KEPT


def test_a_column_added_to_the_choice_is_added_and_filled_one_left_out_stays_untouched(make_settings, stub, db):
    served = generate_rows(CODE, ROWS)
    stub.set_rows(CODE, served)
    _run(make_settings, CHOSEN)
    wider = dict(CHOSEN, columns=["numeric_value", "high", "value"])  # value added, low left out
    assert _run(make_settings, wider)[2].rows_written == ROWS  # every row gains its value
    assert [c for c, _ in _columns(db)] == [c for c, _ in KEPT[:-2]] + ["_batch_id", "_loaded_at", "value"]
    assert _rows(db, "SELECT count(*) FROM chosen WHERE value IS NULL OR low IS NULL") == [(0,)]

    stub.set_rows(CODE, [dict(row, Low=row["Low"] - 1) for row in served])  # only low revised upstream
    assert _run(make_settings, wider)[2].rows_written == 0  # low is no longer chosen: nothing changed
    loaded = set(_rows(db, "SELECT country, year, dim1, low FROM chosen"))
    assert loaded == {(r["SpatialDim"], r["TimeDim"], r["Dim1"], r["Low"]) for r in served}


@pytest.mark.parametrize(
    "before, after, message",
    [
        (
            {"rename": {"time_dim": "year"}},
            {"rename": {"time_dim": "period"}},
            "column year holds time_dim, which dataset 'chosen' now names period; rename the column first "
            "(ALTER TABLE public.chosen RENAME COLUMN year TO period) or set rename back",
        ),
        (
            {},
            {"rename": {"numeric_value": "years"}},
            "column numeric_value holds numeric_value, which dataset 'chosen' now names years; rename the column "
            "first (ALTER TABLE public.chosen RENAME COLUMN numeric_value TO years) or set rename back",
        ),
        (
            {"rename": {"spatial_dim": "country"}},
            {},
            "column country holds spatial_dim, which dataset 'chosen' now names spatial_dim; rename the column "
            "first (ALTER TABLE public.chosen RENAME COLUMN country TO spatial_dim) or set rename back",
        ),
    ],
)
def test_a_rename_of_a_column_the_table_has_is_refused_until_migrated(make_settings, stub, db, before, after, message):
    stub.set_rows(CODE, generate_rows(CODE, 60))
    _run(make_settings, {"indicator": CODE, "table": "chosen", **before})
    columns = _columns(db)
    outcomes = run_pipeline(make_settings({"chosen": {"indicator": CODE, "table": "chosen", **after}}))
    assert [o.ok for o in outcomes] == [True, True, False]
    assert outcomes[2].error == f"table public.chosen: {message}"
    assert "\n" not in outcomes[2].error
    assert _columns(db) == columns  # nothing changed

    old, new = message.split("RENAME COLUMN ")[1].split(")")[0].split(" TO ")
    with db.cursor() as cursor:
        cursor.execute(f"ALTER TABLE chosen RENAME COLUMN {old} TO {new}")
    assert _run(make_settings, {"indicator": CODE, "table": "chosen", **after})[2].rows_written == 0
    assert _rows(db, "SELECT count(*) FROM chosen") == [(60,)]


def test_an_empty_choice_keeps_the_natural_key_alone(make_settings, stub, db):
    stub.set_rows(CODE, generate_rows(CODE, 90))
    entry = {"indicator": CODE, "table": "facts", "columns": []}
    assert _run(make_settings, entry, name="facts")[2].rows_written == 90
    assert [c for c, _ in _columns(db, "facts")] == list(schema.NATURAL_KEY) + ["_batch_id", "_loaded_at"]
    stub.set_rows(CODE, generate_rows(CODE, 120, vary_every=2))  # 30 new facts, values revised
    assert _run(make_settings, entry, name="facts")[2].rows_written == 30
