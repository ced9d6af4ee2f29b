"""Load into a real PostgreSQL: every value arrives exactly, whatever the database's encoding.

Floats to the last bit, 2^53 Ids, negative years, text beyond the BMP, quotes
and newlines, empty strings against nulls, and instants with offsets before
1970 or 1900 and after 2099 go through the binary COPY unchanged; in a LATIN1
database text is stored as the same characters, and a character LATIN1 cannot
hold fails the load with nothing written and staging kept.
"""

from datetime import datetime, timezone

import psycopg2
import pytest

from src.contracts.layout import Layout
from src.errors import LoadError
from tests.helpers import fresh_database
from tests.load_checks import db_scalar as _scalar
from tests.load_checks import load_batch as _load
from tests.load_checks import stage_batch as _stage
from utils.gho_samples import generate_rows


def _rows(db, table, order="spatial_dim, time_dim, dim1"):
    with db.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} ORDER BY {order}")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


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
