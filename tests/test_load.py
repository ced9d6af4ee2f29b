"""Load into a real PostgreSQL: table creation, natural-key dedup, modes, evolution, exactly-once."""

import shutil
from datetime import datetime, timezone

import psycopg2
import pytest

from src.db import Database
from src.errors import DatabaseUnavailable, LoadError
from src.extract.phase import extract_dataset
from src.load.phase import load_dataset
from src.contracts.layout import Layout
from src.transform.phase import transform_dataset
from tests.helpers import fresh_database
from utils.gho_samples import generate_rows


def _stage(settings, stub, rows, name="life_expectancy_at_birth"):
    stub.set_rows("WHOSIS_000001", rows)
    dataset = settings.datasets[name]
    extract_dataset(settings, dataset)
    transform_dataset(settings, dataset)
    return dataset


def _load(settings, dataset):
    return load_dataset(settings, dataset, Database(settings))


def _rows(db, table, order="spatial_dim, time_dim, dim1"):
    with db.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} ORDER BY {order}")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def _scalar(db, query):
    with db.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchone()[0]


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


def test_merge_rewrites_only_changed_rows(make_settings, stub, db):
    settings = make_settings()
    rows = generate_rows("WHOSIS_000001", 300)
    dataset = _stage(settings, stub, rows)
    _load(settings, dataset)
    first_batch = _scalar(db, "SELECT min(_batch_id) FROM life_expectancy_at_birth")

    changed = [dict(r, Id=r["Id"] + 10_000) for r in rows]  # every Id changes: not a change of fact
    changed[7] = dict(changed[7], NumericValue=99.5, Value="99.5 [99.0-100.0]")
    changed.append(dict(rows[0], Id=50_000, SpatialDim="NEW"))
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
    assert "schema evolution: added column publish_state text to table life_expectancy_at_birth" in caplog.text


def test_values_round_trip_exactly(make_settings, stub, db):
    settings = make_settings()
    row = dict(
        generate_rows("WHOSIS_000001", 1)[0],
        NumericValue=72.865710000000007,
        Comments='quote " comma, newline\nx',
        Dim2="",
        TimeDimensionBegin="2010-01-01T00:00:00+01:00",
    )
    dataset = _stage(settings, stub, [row])
    _load(settings, dataset)
    [stored] = _rows(db, "life_expectancy_at_birth")
    assert stored["numeric_value"] == 72.865710000000007
    assert stored["comments"] == 'quote " comma, newline\nx'
    assert stored["dim2"] == "" and stored["dim3"] is None
    with db.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
    assert str(_scalar(db, "SELECT time_dimension_begin::date FROM life_expectancy_at_birth")) == "2010-01-01"


def test_binary_copy_keeps_every_type_exact(make_settings, stub, db):
    row = dict(
        generate_rows("WHOSIS_000001", 1)[0],
        Id=2**53,
        TimeDim=-1899,
        Value="Côte d’Ivoire 漢字 🙂",
        NumericValue=5e-324,
        Low=-1.7976931348623157e308,
        High=None,
        Comments=None,
        Date="1969-07-20T20:17:40.123456-05:00",
        TimeDimensionBegin="1899-01-01T00:00:00+01:00",
        TimeDimensionEnd="2100-12-31",
        Footnote="note é",
    )
    settings = make_settings()
    _load(settings, _stage(settings, stub, [row]))
    [stored] = _rows(db, "life_expectancy_at_birth")
    assert stored["id"] == 2**53 and stored["time_dim"] == -1899
    assert stored["value"] == "Côte d’Ivoire 漢字 🙂" and stored["footnote"] == "note é"
    assert (stored["numeric_value"], stored["low"], stored["high"]) == (5e-324, -1.7976931348623157e308, None)
    assert stored["comments"] is None and stored["dim2"] is None
    utc = timezone.utc
    assert stored["date"] == datetime(1969, 7, 21, 1, 17, 40, 123456, tzinfo=utc)
    assert stored["time_dimension_begin"] == datetime(1899, 1, 1, tzinfo=utc)
    assert stored["time_dimension_end"] == datetime(2100, 12, 31, tzinfo=utc)
    assert stored["_batch_id"] and stored["_loaded_at"] is not None


@pytest.fixture
def latin1_database(pg_server):
    """A database whose server encoding is LATIN1, as legacy installations have."""
    with fresh_database(pg_server, "TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'") as url:
        yield url


def test_text_is_stored_as_text_in_a_latin1_database(make_settings, stub, latin1_database, monkeypatch):
    """Binary COPY sends UTF-8; PostgreSQL must be told so, whatever the database or PGCLIENTENCODING says."""
    monkeypatch.setenv("PGCLIENTENCODING", "LATIN1")
    settings = make_settings(database_url=latin1_database)
    row = dict(generate_rows("WHOSIS_000001", 1)[0], Value="Côte d'Ivoire", Footnote="Türkiye")  # all in LATIN1
    _load(settings, _stage(settings, stub, [row]))
    reader = psycopg2.connect(latin1_database, client_encoding="UTF8")
    try:
        with reader.cursor() as cursor:
            cursor.execute("SELECT value, footnote, length(value) FROM life_expectancy_at_birth")
            assert cursor.fetchall() == [("Côte d'Ivoire", "Türkiye", len("Côte d'Ivoire"))]
    finally:
        reader.close()


def test_text_a_latin1_database_cannot_hold_fails_the_load_and_keeps_staging(make_settings, stub, latin1_database):
    settings = make_settings(database_url=latin1_database)
    dataset = _stage(settings, stub, [dict(generate_rows("WHOSIS_000001", 1)[0], Value="漢字")])
    with pytest.raises(LoadError, match=r'has no equivalent in encoding "LATIN1".*staging kept'):
        _load(settings, dataset)
    assert len(list(Layout(settings.data_dir).staging(dataset.name).glob("*.parquet"))) == 1
    reader = psycopg2.connect(latin1_database)
    try:
        with reader.cursor() as cursor:
            cursor.execute("SELECT to_regclass('life_expectancy_at_birth')")
            assert cursor.fetchone()[0] is None  # the whole transaction, table creation included, rolled back
    finally:
        reader.close()


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


def test_column_type_changed_by_hand_is_a_clear_error(make_settings, stub, db):
    settings = make_settings()
    dataset = _stage(settings, stub, generate_rows("WHOSIS_000001", 10))
    _load(settings, dataset)
    with db.cursor() as cursor:
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
        cursor.execute("ALTER TABLE life_expectancy_at_birth DROP COLUMN comments")
    _stage(settings, stub, [dict(r, Comments="back") for r in generate_rows("WHOSIS_000001", 10)])
    _load(settings, dataset)
    assert _scalar(db, "SELECT count(*) FROM life_expectancy_at_birth WHERE comments = 'back'") == 10


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


def test_merge_counts_inserted_and_updated(make_settings, stub, db):
    settings = make_settings()
    rows = generate_rows("WHOSIS_000001", 300)
    dataset = _stage(settings, stub, rows[:200])
    assert [(r.inserted, r.updated) for r in _load(settings, dataset)] == [(200, 0)]
    changed = [dict(r, NumericValue=r["NumericValue"] + 1) if i % 7 == 0 else r for i, r in enumerate(rows)]
    dataset = _stage(settings, stub, changed)
    [result] = _load(settings, dataset)
    assert (result.inserted, result.updated) == (100, len(range(0, 200, 7)))
