"""Load into a real PostgreSQL: the table it creates and the merge, replace and append modes.

The first load creates the table with its metadata columns and a unique index
over the whole natural key (NULLS NOT DISTINCT, so null key parts do not
defeat it); merge rewrites only changed facts and counts inserted and updated
rows, replace swaps the content but keeps the table when a batch is empty, and
append inserts new facts and never duplicates one.
"""

import psycopg2
import pytest

from src.contracts.layout import Layout
from tests.load_checks import db_scalar as _scalar
from tests.load_checks import load_batch as _load
from tests.load_checks import stage_batch as _stage
from utils.gho_samples import generate_rows


def test_creates_table_with_metadata_and_unique_natural_key(make_settings, stub, db):
    settings = make_settings()
    dataset = _stage(settings, stub, generate_rows("WHOSIS_000001", 500))
    [result] = _load(settings, dataset)
    assert (result.inserted, result.updated) == (500, 0)
    assert _scalar(db, "SELECT count(*) FROM life_expectancy_at_birth") == 500
    assert (
        _scalar(db, "SELECT count(DISTINCT _batch_id) FROM life_expectancy_at_birth WHERE _loaded_at IS NOT NULL") == 1
    )
    indexdef = _scalar(
        db, "SELECT indexdef FROM pg_indexes WHERE tablename = 'life_expectancy_at_birth' AND indexdef LIKE '%UNIQUE%'"
    )
    assert "NULLS NOT DISTINCT" in indexdef
    for column in (
        "indicator_code",
        "spatial_dim_type",
        "spatial_dim",
        "time_dim_type",
        "time_dim",
        "dim1",
        "dim2",
        "dim3",
        "data_source_dim",
    ):
        assert column in indexdef
    assert (
        _scalar(
            db,
            "SELECT data_type FROM information_schema.columns WHERE table_name = "
            "'life_expectancy_at_birth' AND column_name = 'time_dimension_begin'",
        )
        == "timestamp with time zone"
    )
    assert _scalar(db, "SELECT count(*) FROM etl_batches") == 1
    assert list(Layout(settings.data_dir).staging(dataset.name).glob("*")) == []


def test_a_table_the_load_creates_is_filled_frozen_and_all_visible(make_settings, stub, db):
    """COPY FREEZE: the visibility map is written with the rows (a plain COPY leaves it to VACUUM)."""
    settings = make_settings()
    dataset = _stage(settings, stub, generate_rows("WHOSIS_000001", 300))
    _load(settings, dataset)
    assert _scalar(db, "SELECT pg_relation_size('life_expectancy_at_birth', 'vm')") > 0
    _stage(settings, stub, generate_rows("WHOSIS_000001", 320))  # an existing table: a plain merge
    [result] = _load(settings, dataset)
    assert (result.inserted, _scalar(db, "SELECT count(*) FROM life_expectancy_at_birth")) == (20, 320)


def test_null_key_parts_do_not_defeat_the_index(make_settings, stub, db):
    settings = make_settings()
    rows = generate_rows("WHOSIS_000001", 10)
    for row in rows:
        row["Dim1"] = row["Dim1Type"] = None  # dim2, dim3, data_source_dim are null already
    dataset = _stage(settings, stub, rows)  # dedup in the batch leaves 10 // 3 + 1 facts
    _load(settings, dataset)
    count = _scalar(db, "SELECT count(*) FROM life_expectancy_at_birth")
    _stage(settings, stub, rows)
    [again] = _load(settings, dataset)
    assert again.inserted == 0
    assert _scalar(db, "SELECT count(*) FROM life_expectancy_at_birth") == count == 4
    with pytest.raises(psycopg2.errors.UniqueViolation):
        with db.cursor() as cursor:
            cursor.execute(
                "INSERT INTO life_expectancy_at_birth (indicator_code, spatial_dim_type, spatial_dim, time_dim_type, "
                "time_dim, _batch_id) SELECT indicator_code, spatial_dim_type, spatial_dim, time_dim_type, time_dim, "
                "'x' FROM life_expectancy_at_birth LIMIT 1"
            )


def _one_revised_one_new(rows, revised, numeric_value, value):
    """`rows` downloaded again: every Id new (not a change of fact), row `revised` with a new value, one new row."""
    changed = [dict(r, Id=r["Id"] + 10_000) for r in rows]
    changed[revised] = dict(changed[revised], NumericValue=numeric_value, Value=value)
    changed.append(dict(rows[0], Id=50_000, SpatialDim="NEW"))
    return changed


def test_merge_rewrites_only_changed_rows(make_settings, stub, db):
    settings = make_settings()
    rows = generate_rows("WHOSIS_000001", 300)
    dataset = _stage(settings, stub, rows)
    _load(settings, dataset)
    first_batch = _scalar(db, "SELECT min(_batch_id) FROM life_expectancy_at_birth")

    changed = _one_revised_one_new(rows, 7, 99.5, "99.5 [99.0-100.0]")
    _stage(settings, stub, changed)
    [result] = _load(settings, dataset)
    assert (result.inserted, result.updated) == (1, 1)
    assert _scalar(db, "SELECT count(*) FROM life_expectancy_at_birth") == 301
    assert _scalar(db, "SELECT numeric_value FROM life_expectancy_at_birth WHERE id = %d" % changed[7]["Id"]) == 99.5
    assert _scalar(db, f"SELECT count(*) FROM life_expectancy_at_birth WHERE _batch_id = '{first_batch}'") == 299


def test_replace_swaps_content(make_settings, stub, db):
    settings = make_settings({"life_expectancy_at_birth": {"indicator": "WHOSIS_000001", "mode": "replace"}})
    dataset = _stage(settings, stub, generate_rows("WHOSIS_000001", 200))
    _load(settings, dataset)
    _stage(settings, stub, generate_rows("WHOSIS_000001", 50))
    [result] = _load(settings, dataset)
    assert result.inserted == 50
    assert _scalar(db, "SELECT count(*) FROM life_expectancy_at_birth") == 50


def test_replace_keeps_table_when_batch_is_empty(make_settings, stub, db):
    settings = make_settings({"life_expectancy_at_birth": {"indicator": "WHOSIS_000001", "mode": "replace"}})
    dataset = _stage(settings, stub, generate_rows("WHOSIS_000001", 20))
    _load(settings, dataset)
    _stage(settings, stub, [])
    _load(settings, dataset)
    assert _scalar(db, "SELECT count(*) FROM life_expectancy_at_birth") == 20


def test_append_inserts_new_facts_and_never_duplicates(make_settings, stub, db):
    settings = make_settings({"life_expectancy_at_birth": {"indicator": "WHOSIS_000001", "mode": "append"}})
    rows = generate_rows("WHOSIS_000001", 100)
    dataset = _stage(settings, stub, rows[:60])
    _load(settings, dataset)
    _stage(settings, stub, [dict(r, NumericValue=1.0) for r in rows])
    [result] = _load(settings, dataset)
    assert (result.inserted, result.updated) == (40, 0)
    assert _scalar(db, "SELECT count(*) FROM life_expectancy_at_birth") == 100
    assert _scalar(db, "SELECT count(*) FROM life_expectancy_at_birth WHERE numeric_value = 1.0") == 40


def test_merge_counts_inserted_and_updated(make_settings, stub, db):
    settings = make_settings()
    rows = generate_rows("WHOSIS_000001", 300)
    dataset = _stage(settings, stub, rows[:200])
    assert [(r.inserted, r.updated) for r in _load(settings, dataset)] == [(200, 0)]
    changed = [dict(r, NumericValue=r["NumericValue"] + 1) if i % 7 == 0 else r for i, r in enumerate(rows)]
    dataset = _stage(settings, stub, changed)
    [result] = _load(settings, dataset)
    assert (result.inserted, result.updated) == (100, len(range(0, 200, 7)))


def test_a_table_indexed_in_the_earlier_column_order_keeps_merging(make_settings, stub, db):
    """Tables made before the index was led by spatial_dim keep their index (same name, same columns)."""
    settings = make_settings()
    rows = generate_rows("WHOSIS_000001", 200)
    dataset = _stage(settings, stub, rows)
    _load(settings, dataset)
    name = _scalar(db, "SELECT indexname FROM pg_indexes WHERE tablename = 'life_expectancy_at_birth'")
    assert (
        _scalar(db, f"SELECT indexdef FROM pg_indexes WHERE indexname = '{name}'")
        .split("(")[1]
        .startswith("spatial_dim, time_dim")
    )
    with db.cursor() as cursor:
        cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute(
            f'CREATE UNIQUE INDEX "{name}" ON life_expectancy_at_birth (indicator_code, spatial_dim_type, '
            "spatial_dim, time_dim_type, time_dim, dim1, dim2, dim3, data_source_dim) NULLS NOT DISTINCT"
        )
    db.commit()
    _stage(settings, stub, _one_revised_one_new(rows, 3, 12.5, "12.5"))
    [result] = _load(settings, dataset)
    assert (result.inserted, result.updated) == (1, 1)
    assert _scalar(db, "SELECT count(*) FROM life_expectancy_at_birth") == 201
    assert _scalar(db, "SELECT count(*) FROM pg_indexes WHERE tablename = 'life_expectancy_at_birth'") == 1
    assert (
        _scalar(db, f"SELECT indexdef FROM pg_indexes WHERE indexname = '{name}'")
        .split("(")[1]
        .startswith("indicator_code")
    )
