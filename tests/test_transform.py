"""Transform: typing, range parsing, rejects, dedup, schema drift, and safe hand-over of batches."""

import json
import shutil
from datetime import datetime, timezone

import pandas as pd
import pyarrow.parquet as pq
import pytest

from src.contracts import schema
from src.errors import TooManyRejects
from src.extract.phase import extract_dataset
from src.contracts.layout import Layout
from src.transform.phase import transform_dataset
from src.transform.rules import records_to_frame
from tests.helpers import requires_samples, sample
from utils.gho_samples import generate_rows, read_sample_csv, read_sample_json


def _record(**fields):
    base = {
        "IndicatorCode": "X",
        "SpatialDimType": "COUNTRY",
        "SpatialDim": "AFG",
        "TimeDimType": "YEAR",
        "TimeDim": 2010,
        "Value": "1",
        "NumericValue": 1.0,
        "Date": "2024-08-02T09:43:39Z",
    }
    base.update(fields)
    return base


def test_columns_are_snake_case_in_order():
    frame, rejects = records_to_frame([_record()])
    assert list(frame.columns) == list(schema.CORE_COLUMNS)
    assert rejects == []


@pytest.mark.parametrize(
    "value, low, high, numeric",
    [
        ("63.2 [62.1-64.0]", 62.1, 64.0, 63.2),
        ("0.0 [0.0 - 0.0]", 0.0, 0.0, 0.0),
        ("1 070.43 [693.29-1 459.03]", 693.29, 1459.03, 1070.43),
        ("-1.5 [-2.25--0.75]", -2.25, -0.75, -1.5),
    ],
)
def test_ranges_in_value_fill_low_and_high(value, low, high, numeric):
    frame, _ = records_to_frame([_record(Value=value, NumericValue=None, Low=None, High=None)])
    row = frame.iloc[0]
    assert (row["low"], row["high"], row["numeric_value"]) == (low, high, numeric)
    assert row["value"] == value


def test_published_numbers_are_not_overwritten_by_the_text():
    frame, _ = records_to_frame([_record(Value="48.0 [46.7-49.6]", NumericValue=48.03754, Low=46.71678, High=49.62846)])
    assert frame.iloc[0][["numeric_value", "low", "high"]].tolist() == [48.03754, 46.71678, 49.62846]


def test_no_data_stays_text_with_null_number():
    frame, rejects = records_to_frame([_record(Value="No data", NumericValue=None)])
    assert rejects == []
    assert frame.iloc[0]["value"] == "No data"
    assert pd.isna(frame.iloc[0]["numeric_value"])


def test_offsets_are_kept_right():
    frame, _ = records_to_frame(
        [
            _record(
                Date="2013-06-11T14:01:25.3+02:00",
                TimeDimensionBegin="2010-01-01T00:00:00+01:00",
                TimeDimensionEnd="2010-12-31T00:00:00+01:00",
            )
        ]
    )
    row = frame.iloc[0]
    # An instant converts exactly...
    assert row["date"] == datetime(2013, 6, 11, 12, 1, 25, 300000, tzinfo=timezone.utc)
    # ...a period boundary keeps its calendar date for a reader in UTC.
    assert row["time_dimension_begin"] == datetime(2010, 1, 1, tzinfo=timezone.utc)
    assert row["time_dimension_end"].year == 2010


def test_date_only_and_z_forms_agree_with_offset_form():
    frames = [
        records_to_frame([_record(TimeDimensionBegin=text)])[0]
        for text in ("2008-01-01", "2008-01-01T00:00:00+01:00", "2008-01-01T00:00:00Z")
    ]
    assert len({f.iloc[0]["time_dimension_begin"] for f in frames}) == 1


def test_date_only_period_boundary_keeps_its_day():
    # "-15" at the end of a date is the day, not a zone offset to strip.
    frame, rejects = records_to_frame([_record(TimeDimensionBegin="2020-02-15", TimeDimensionEnd="2020-02-29")])
    assert rejects == []
    assert frame.iloc[0]["time_dimension_begin"] == datetime(2020, 2, 15, tzinfo=timezone.utc)
    assert frame.iloc[0]["time_dimension_end"] == datetime(2020, 2, 29, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"TimeDim": "abc"}, "time_dim 'abc' is not an integer"),
        ({"TimeDim": 2010.5}, "time_dim 2010.5 is not an integer"),
        ({"NumericValue": "lots"}, "numeric_value 'lots' is not a finite number"),
        ({"Low": True}, "low True is not a finite number"),
        ({"Date": "yesterday"}, "date 'yesterday' is not an ISO 8601 date-time"),
        ({"SpatialDim": None}, "missing spatial_dim"),
        ({"SpatialDimType": "  "}, "missing spatial_dim_type"),
        ({"IndicatorCode": None}, "missing indicator_code"),
        ({"Comments": "bad\x00byte"}, "comments contains a NUL byte, which PostgreSQL cannot store"),
    ],
)
def test_rows_that_cannot_be_typed_are_rejected_with_reason(fields, reason):
    good = _record(SpatialDim="GOOD")
    bad = _record(**fields)
    frame, rejects = records_to_frame([good, bad])
    assert frame["spatial_dim"].tolist() == ["GOOD"]
    assert rejects == [(bad, reason)]


def test_new_field_becomes_column_and_vanished_field_is_null():
    records = [_record(NewFieldName=5)]
    del records[0]["Value"]
    frame, _ = records_to_frame(records)
    assert frame.iloc[0]["new_field_name"] == "5"
    assert frame.iloc[0]["value"] is None
    assert list(frame.columns)[-1] == "new_field_name"


def test_non_ascii_and_long_text_survive():
    comment = "Données 東京 " + "x" * 100_000
    frame, rejects = records_to_frame([_record(Comments=comment)])
    assert rejects == [] and frame.iloc[0]["comments"] == comment


@requires_samples
@pytest.mark.parametrize(
    "name",
    [
        "ellenlodin_Data-mining-project__who_AIR_9.csv",
        "OlaPindral_EDA-for-Alcohol-Consumption-vs-Suicide-Rates__SA_0000001688.csv",
        "ellenlodin_Data-mining-project__who_carep.csv",
        "yloughribi_week-5-life-expectancy__WHOSIS_000001.csv",
    ],
)
def test_real_samples_type_without_rejects(name):
    records = read_sample_csv(sample(name))
    frame, rejects = records_to_frame(records)
    assert rejects == []
    assert len(frame) == len(records)
    ranged = frame["value"].str.contains(r"\[", regex=True, na=False)
    assert frame.loc[ranged, "low"].notna().all() and frame.loc[ranged, "high"].notna().all()
    assert (frame.loc[ranged, "low"] <= frame.loc[ranged, "high"]).all()


@requires_samples
def test_real_json_samples_older_schema():
    records = read_sample_json(sample("datacommonsorg_data__EMFLIMITELECTRIC.json"))
    frame, rejects = records_to_frame(records)
    assert rejects == [] and len(frame) == 32
    assert frame["parent_location_code"].isna().all()  # a field the older schema lacks is null
    assert frame["numeric_value"].isna().all()


def _landed(make_settings, stub, rows, **overrides):
    stub.set_rows("WHOSIS_000001", rows)
    settings = make_settings(**overrides)
    dataset = settings.datasets["life_expectancy_at_birth"]
    extract_dataset(settings, dataset)
    return settings, dataset


def test_batch_to_staging_and_landing_removed(make_settings, stub):
    settings, dataset = _landed(make_settings, stub, generate_rows("WHOSIS_000001", 1200))
    results = transform_dataset(settings, dataset)
    layout = Layout(settings.data_dir)
    assert [r.rows_out for r in results] == [1200]
    staged = pq.read_table(layout.staging_file(dataset.name, results[0].batch_id))
    assert staged.num_rows == 1200 and staged.column_names == list(schema.CORE_COLUMNS)
    assert list(layout.landing(dataset.name).iterdir()) == []


def test_duplicates_keep_latest_date(make_settings, stub):
    rows = generate_rows("WHOSIS_000001", 3)
    older = dict(rows[0], Id=99, NumericValue=1.0, Date="2020-01-01T00:00:00Z")
    newer = dict(rows[0], Id=98, NumericValue=2.0, Date="2024-01-01T00:00:00Z")
    settings, dataset = _landed(make_settings, stub, [newer, older] + rows[1:])
    result = transform_dataset(settings, dataset)[0]
    assert (result.rows_out, result.duplicates) == (3, 1)
    staged = pq.read_table(Layout(settings.data_dir).staging_file(dataset.name, result.batch_id)).to_pandas()
    assert staged.loc[staged["spatial_dim"] == rows[0]["SpatialDim"]].query("time_dim == 1960 and dim1 == 'SEX_MLE'")[
        "numeric_value"
    ].tolist() == [2.0]


def test_rejects_below_threshold_are_written_and_rest_staged(make_settings, stub):
    rows = generate_rows("WHOSIS_000001", 100)
    rows[5]["TimeDim"] = "abc"
    settings, dataset = _landed(make_settings, stub, rows)
    result = transform_dataset(settings, dataset)[0]
    assert (result.rows_out, result.rejected) == (99, 1)
    lines = Layout(settings.data_dir).rejects_file(dataset.name, result.batch_id).read_text().splitlines()
    assert [json.loads(line)["reason"] for line in lines] == ["time_dim 'abc' is not an integer"]
    assert json.loads(lines[0])["record"]["Id"] == rows[5]["Id"]


def test_too_many_rejects_fails_batch_and_keeps_landing(make_settings, stub):
    rows = generate_rows("WHOSIS_000001", 100)
    for row in rows[:10]:
        row["SpatialDim"] = None
    settings, dataset = _landed(make_settings, stub, rows)
    with pytest.raises(TooManyRejects, match=r"10\.0% of rows rejected \(limit 5\.0%"):
        transform_dataset(settings, dataset)
    layout = Layout(settings.data_dir)
    assert not list(layout.staging(dataset.name).glob("*.parquet"))
    assert len(list(layout.landing(dataset.name).iterdir())) == 1
    relaxed = make_settings(reject_threshold=0.2)
    assert transform_dataset(relaxed, dataset)[0].rows_out == 90


def test_zero_row_indicator_gives_empty_staging(make_settings, stub):
    settings, dataset = _landed(make_settings, stub, [])
    result = transform_dataset(settings, dataset)[0]
    assert (result.rows_in, result.rows_out) == (0, 0)
    staged = pq.read_table(Layout(settings.data_dir).staging_file(dataset.name, result.batch_id))
    assert staged.num_rows == 0 and staged.column_names == list(schema.CORE_COLUMNS)


def test_already_staged_batch_only_removes_landing(make_settings, stub):
    settings, dataset = _landed(make_settings, stub, generate_rows("WHOSIS_000001", 50))
    layout = Layout(settings.data_dir)
    batch_dir = next(layout.landing(dataset.name).iterdir())
    backup = settings.data_dir / "copy-of-landing"
    shutil.copytree(batch_dir, backup)
    first = transform_dataset(settings, dataset)[0]
    backup.rename(batch_dir)  # as if the process died after staging, before removing landing
    staged_before = layout.staging_file(dataset.name, first.batch_id).read_bytes()
    second = transform_dataset(settings, dataset)[0]
    assert second.batch_id == first.batch_id
    assert layout.staging_file(dataset.name, first.batch_id).read_bytes() == staged_before
    assert not batch_dir.exists()


@pytest.mark.parametrize(
    "late_values, stored",
    [
        (["late"], ["late"]),
        ([7, "late"], ["7", "late"]),  # a number then text: Arrow cannot infer one type, json reads the names
    ],
)
def test_field_first_seen_on_a_late_page_becomes_a_column(make_settings, stub, caplog, late_values, stored):
    rows = generate_rows("WHOSIS_000001", 900)
    for offset, value in enumerate(late_values, start=len(rows) - len(late_values)):
        rows[offset] = dict(rows[offset], Footnote=value)
    settings, dataset = _landed(make_settings, stub, rows, page_size=200)
    with caplog.at_level("INFO", logger="gho_etl.transform"):
        [result] = transform_dataset(settings, dataset)
    layout = Layout(settings.data_dir)
    staged = pq.read_table(layout.staging_file(dataset.name, result.batch_id))
    assert staged.column_names == list(schema.CORE_COLUMNS) + ["footnote"]
    assert staged.num_rows == result.rows_out == 900
    assert staged.column("footnote").drop_null().to_pylist() == stored
    assert "reading every page for its fields and typing the batch again" in caplog.text
    assert [p.name for p in layout.staging(dataset.name).iterdir()] == [f"{result.batch_id}.parquet"]
    assert not layout.rejects(dataset.name).exists() or list(layout.rejects(dataset.name).iterdir()) == []
    assert list(layout.landing(dataset.name).iterdir()) == []
