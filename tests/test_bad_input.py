"""Bad input, end to end: every case ends in loaded rows plus rejects with reasons, or one clear error.

Rows are served by the stand-in exactly as listed, go through extract,
transform and load into PostgreSQL, and the test reads back the table, the
rejects file and the script's output.
"""

import json
from urllib.parse import parse_qs

import pytest

from src.contracts.layout import Layout
from tests.helpers import run_script, write_dataset_config
from tests.pipeline_checks import leftovers, run_pipeline, scalar
from utils.gho_samples import generate_rows

DATASET = "life_expectancy_at_birth"
INDICATOR = "WHOSIS_000001"
GOOD_ROWS = 400


def _rejects(settings):
    found = {}
    for path in Layout(settings.data_dir).rejects(DATASET).glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            found[entry["record"].get("Id") if isinstance(entry["record"], dict) else None] = entry["reason"]
    return found


def test_bad_rows_are_rejected_with_reasons_and_the_rest_loaded(make_settings, stub, database_url):
    rows = generate_rows(INDICATOR, GOOD_ROWS)
    base = dict(rows[0], Dim1="SEX_OTHER")

    def bad(id_, **fields):
        return {**base, "Id": id_, "SpatialDim": f"BAD{id_}", **fields}

    extra = [
        bad(9001, TimeDim="abc"),
        bad(9002, NumericValue="No data"),
        bad(9003, Comments="nul\x00byte"),
        bad(9004, SpatialDim=None),
        bad(9005, Date="yesterday"),
        bad(9006, ParentLocation="\ud800"),
        dict(base, Id=9101, SpatialDim="LONG", Comments="é" * 100_000),  # kept: long is fine
        dict(base, Id=9102, SpatialDim="CIV", ParentLocation="Côte d’Ivoire 漢字 🙂"),  # kept
        dict(base, Id=9103, SpatialDim="NODATA", Value="No data", NumericValue=None),  # kept, null number
        dict(base, Id=9104, SpatialDim="DUP", Date="2020-01-01T00:00:00Z", NumericValue=1.0),
        dict(base, Id=9105, SpatialDim="DUP", Date="2024-01-01T00:00:00Z", NumericValue=2.0),  # wins
    ]
    stub.set_rows(INDICATOR, rows + extra)
    settings = make_settings()
    outcomes = run_pipeline(settings)
    assert [o.ok for o in outcomes] == [True, True, True], [o.error for o in outcomes]
    assert _rejects(settings) == {
        9001: "time_dim 'abc' is not an integer",
        9002: "numeric_value 'No data' is not a finite number",
        9003: "comments contains a NUL byte, which PostgreSQL cannot store",
        9004: "missing spatial_dim",
        9005: "date 'yesterday' is not an ISO 8601 date-time",
        9006: "parent_location is not valid Unicode text (it holds a lone surrogate)",
    }
    assert scalar(database_url, f"SELECT count(*) FROM {DATASET}") == GOOD_ROWS + 4
    assert scalar(database_url, f"SELECT length(comments) FROM {DATASET} WHERE spatial_dim = 'LONG'") == 100_000
    assert scalar(database_url, f"SELECT parent_location FROM {DATASET} WHERE spatial_dim = 'CIV'") == (
        "Côte d’Ivoire 漢字 🙂"
    )
    assert scalar(database_url, f"SELECT numeric_value IS NULL FROM {DATASET} WHERE spatial_dim = 'NODATA'")
    assert scalar(database_url, f"SELECT numeric_value FROM {DATASET} WHERE spatial_dim = 'DUP'") == 2.0
    assert leftovers(settings.data_dir) == []


def test_new_field_then_vanished_field(make_settings, stub, database_url):
    rows = generate_rows(INDICATOR, 50)
    stub.set_rows(INDICATOR, [dict(r, Footnote=f"note {r['Id']}") for r in rows])
    settings = make_settings()
    assert all(o.ok for o in run_pipeline(settings))
    stub.set_rows(INDICATOR, [{k: v for k, v in r.items() if k != "Comments"} for r in rows])
    assert all(o.ok for o in run_pipeline(settings))
    assert scalar(database_url, f"SELECT count(*) FROM {DATASET} WHERE footnote LIKE 'note %'") == 50
    assert scalar(database_url, f"SELECT count(*) FROM {DATASET}") == 50


def test_zero_rows_load_an_empty_table(make_settings, stub, database_url):
    stub.set_rows(INDICATOR, [])
    settings = make_settings()
    assert all(o.ok for o in run_pipeline(settings))
    assert scalar(database_url, f"SELECT count(*) FROM {DATASET}") == 0


def test_mostly_bad_response_fails_clearly_and_keeps_landing(script_env, stub, tmp_path):
    rows = generate_rows(INDICATOR, 100)
    for row in rows[:30]:
        row["TimeDim"] = "abc"
    stub.set_rows(INDICATOR, rows)
    result = run_script("start_scheduler.py", "--once", env=script_env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "30.0% of rows rejected (limit 5.0%, first reason: time_dim 'abc' is not an integer)" in error
    landing = Layout(tmp_path / "data").landing(DATASET)
    assert len([p for p in landing.iterdir() if p.is_dir()]) == 1


def test_corrupted_landing_page_fails_clearly_and_keeps_it(script_env, stub, tmp_path):
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, 30))
    run_script("start_extract.py", env=script_env, check=0)
    [batch] = [p for p in Layout(tmp_path / "data").landing(DATASET).iterdir() if p.is_dir()]
    page = batch / "page-00000.json.lz4"
    page.write_bytes(page.read_bytes()[:200])  # a disk error, a hand edit: a frame cut short
    result = run_script("start_transform.py", env=script_env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "landing page" in error and "page-00000.json.lz4" in error
    assert page.exists()


def test_malformed_json_from_the_api_is_retried_then_a_clear_error(script_env, stub):
    stub.add_fault("truncate", times=100)
    result = run_script("start_extract.py", env=dict(script_env, GHO_MAX_ATTEMPTS="2"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "giving up after 2 attempts: response is not valid JSON" in result.stderr


@pytest.mark.parametrize(
    "entry,message",
    [
        ({"indicator": INDICATOR, "table": "x; DROP TABLE y"}, "'x; DROP TABLE y' is not a plain SQL identifier"),
        ({"indicator": INDICATOR, "table": 'x"; DROP TABLE y; --'}, "is not a plain SQL identifier"),
        ({"indicator": "X; DROP TABLE y"}, "is not a GHO indicator code"),
        ({"indicator": INDICATOR, "filter": "Dim1 eq 'x'\n; DROP TABLE y"}, "contains control characters"),
    ],
)
def test_hostile_configuration_is_refused_before_any_work(script_env, tmp_path, database_url, stub, entry, message):
    env = dict(script_env, DATASET_CONFIG_FILE=str(write_dataset_config(tmp_path, {"hostile": entry})))
    result = run_script("start_scheduler.py", "--once", env=env)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert stub.requests == []
    assert not (tmp_path / "data" / "landing").exists()


def test_hostile_filter_reaches_the_api_only_as_a_quoted_parameter(script_env, tmp_path, database_url, db, stub):
    with db.cursor() as cursor:
        cursor.execute("CREATE TABLE y (keep int)")
    hostile = "Dim1 eq 'x''); DROP TABLE y; --'"
    config = {"hostile": {"indicator": INDICATOR, "filter": hostile, "table": "hostile_filter"}}
    env = dict(script_env, DATASET_CONFIG_FILE=str(write_dataset_config(tmp_path, config)))
    run_script("start_scheduler.py", "--once", env=env, check=0)
    requests = [r for r in stub.requests if r["path"].startswith("/api/")]
    assert len(requests) == 2  # the rows (none match), then the final count
    for request in requests:
        assert parse_qs(request["query"])["$filter"] == [hostile]  # one encoded parameter, passed on verbatim
    assert scalar(database_url, "SELECT to_regclass('y') IS NOT NULL")
    assert scalar(database_url, "SELECT count(*) FROM hostile_filter") == 0
