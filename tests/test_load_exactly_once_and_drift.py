"""Load into a real PostgreSQL: exactly once, and tables that drifted from what the loader made.

A batch in the ledger is never applied twice, an identical batch (or the same
data under new Ids) rewrites no row version, and a database that is down
keeps staging for the next run. A field new to the source adds a column; a
column dropped by hand is restored and rows deleted by hand come back, while a
column type changed by hand is a clear error that keeps staging.
"""

import shutil

import pytest

from src.contracts.layout import Layout
from src.errors import DatabaseUnavailable, LoadError
from tests.load_checks import db_scalar as _scalar
from tests.load_checks import load_batch as _load
from tests.load_checks import stage_batch as _stage
from utils.gho_samples import generate_rows

# --- exactly once ---------------------------------------------------------------------


def test_batch_in_ledger_is_never_applied_twice(make_settings, stub, db, tmp_path):
    settings = make_settings()
    dataset = _stage(settings, stub, generate_rows("WHOSIS_000001", 100))
    staging_file = next(Layout(settings.data_dir).staging(dataset.name).glob("*.parquet"))
    shutil.copy(staging_file, tmp_path / "kept.parquet")
    _load(settings, dataset)
    with db.cursor() as cursor:
        cursor.execute("UPDATE life_expectancy_at_birth SET numeric_value = -1")
    shutil.copy(tmp_path / "kept.parquet", staging_file)  # as if the crash came after commit, before unlink
    [result] = _load(settings, dataset)
    assert result.skipped
    assert _scalar(db, "SELECT count(*) FROM life_expectancy_at_birth WHERE numeric_value = -1") == 100
    assert not staging_file.exists()


def test_database_down_keeps_staging(make_settings, stub):
    settings = make_settings(database_url="postgresql://nobody@127.0.0.1:9/none")
    dataset = _stage(settings, stub, generate_rows("WHOSIS_000001", 10))
    with pytest.raises(DatabaseUnavailable, match=r"cannot connect to postgresql://nobody@127\.0\.0\.1:9/none"):
        _load(settings, dataset)
    assert len(list(Layout(settings.data_dir).staging(dataset.name).glob("*.parquet"))) == 1


def _xmins(db, table="life_expectancy_at_birth"):
    with db.cursor() as cursor:
        cursor.execute(f"SELECT xmin::text FROM {table} ORDER BY spatial_dim, time_dim, dim1")
        return [x for (x,) in cursor.fetchall()]


def test_identical_batch_is_skipped_without_touching_the_table(make_settings, stub, db):
    settings = make_settings()
    rows = generate_rows("WHOSIS_000001", 300)
    dataset = _stage(settings, stub, rows)
    _load(settings, dataset)
    before = _xmins(db)
    _stage(settings, stub, rows)
    [result] = _load(settings, dataset)
    assert result.skipped and (result.inserted, result.updated) == (0, 0)
    assert _xmins(db) == before  # not one row version rewritten
    assert _scalar(db, "SELECT count(*) FROM etl_batches WHERE skipped") == 1


def test_unchanged_data_with_new_ids_rewrites_no_row(make_settings, stub, db):
    settings = make_settings()
    rows = generate_rows("WHOSIS_000001", 300)
    dataset = _stage(settings, stub, rows)
    _load(settings, dataset)
    before = _xmins(db)
    dataset = _stage(settings, stub, [dict(r, Id=r["Id"] + 10_000) for r in rows])
    [result] = _load(settings, dataset)
    assert not result.skipped and (result.inserted, result.updated) == (0, 0)
    assert _xmins(db) == before


# --- schema evolution and changes by hand ------------------------------------------------


def test_new_field_adds_column(make_settings, stub, db, caplog):
    settings = make_settings()
    rows = generate_rows("WHOSIS_000001", 30)
    dataset = _stage(settings, stub, rows)
    _load(settings, dataset)
    _stage(settings, stub, [dict(r, PublishState="PUBLISHED") for r in rows])
    with caplog.at_level("WARNING"):
        [result] = _load(settings, dataset)
    assert result.updated == 30
    assert _scalar(db, "SELECT count(*) FROM life_expectancy_at_birth WHERE publish_state = 'PUBLISHED'") == 30
    assert "schema evolution: added column publish_state text to table public.life_expectancy_at_birth" in caplog.text


def test_column_type_changed_by_hand_is_a_clear_error(make_settings, stub, db):
    settings = make_settings()
    dataset = _stage(settings, stub, generate_rows("WHOSIS_000001", 10))
    _load(settings, dataset)
    with db.cursor() as cursor:
        # PostgreSQL refuses the change while the labelled view reads the column, as it would tell a user.
        cursor.execute("DROP VIEW life_expectancy_at_birth_labeled")
        cursor.execute("ALTER TABLE life_expectancy_at_birth ALTER COLUMN numeric_value TYPE text")
    _stage(settings, stub, generate_rows("WHOSIS_000001", 10))
    with pytest.raises(LoadError, match="column numeric_value is text, expected double precision"):
        _load(settings, dataset)
    assert len(list(Layout(settings.data_dir).staging(dataset.name).glob("*.parquet"))) == 1


def test_column_dropped_by_hand_is_restored(make_settings, stub, db):
    settings = make_settings()
    dataset = _stage(settings, stub, generate_rows("WHOSIS_000001", 10))
    _load(settings, dataset)
    with db.cursor() as cursor:
        cursor.execute("ALTER TABLE life_expectancy_at_birth DROP COLUMN comments CASCADE")  # and the view
    _stage(settings, stub, [dict(r, Comments="back") for r in generate_rows("WHOSIS_000001", 10)])
    _load(settings, dataset)
    assert _scalar(db, "SELECT count(*) FROM life_expectancy_at_birth WHERE comments = 'back'") == 10
    assert _scalar(db, "SELECT count(*) FROM life_expectancy_at_birth_labeled WHERE comments = 'back'") == 10


def test_rows_deleted_by_hand_are_restored_by_an_identical_batch(make_settings, stub, db):
    settings = make_settings()
    rows = generate_rows("WHOSIS_000001", 300)
    dataset = _stage(settings, stub, rows)
    _load(settings, dataset)
    with db.cursor() as cursor:
        cursor.execute("DELETE FROM life_expectancy_at_birth WHERE time_dim < 1970")
    _stage(settings, stub, rows)
    [result] = _load(settings, dataset)
    assert not result.skipped and result.inserted > 0
    assert _scalar(db, "SELECT count(*) FROM life_expectancy_at_birth") == 300


def test_a_value_edited_by_hand_is_repaired_by_an_identical_batch(make_settings, stub, db):
    settings = make_settings()
    rows = generate_rows("WHOSIS_000001", 300)
    dataset = _stage(settings, stub, rows)
    _load(settings, dataset)
    with db.cursor() as cursor:
        cursor.execute("UPDATE life_expectancy_at_birth SET numeric_value = -1 WHERE id = 7")
    _stage(settings, stub, rows)
    [result] = _load(settings, dataset)
    assert not result.skipped and result.updated == 1
    assert _scalar(db, "SELECT numeric_value FROM life_expectancy_at_birth WHERE id = 7") == rows[6]["NumericValue"]
    _stage(settings, stub, rows)
    [again] = _load(settings, dataset)
    assert again.skipped, "a table that matches again is skipped again"
