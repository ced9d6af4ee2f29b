"""Refresh cost proportional to change: the change probe before a download, and no work on an unchanged batch.

In this process, through the stand-in over HTTP and a real PostgreSQL: an unchanged refresh asks one
cheap question per indicator and writes nothing; any sign of change, `--full-refresh`, an old last
download, `probe: false` and a server that answers the probe wrongly all download; a download holding
the pages of the last batch loaded is neither transformed nor loaded.
"""

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest

from src.contracts import layout
from src.contracts.layout import Layout
from src.db import Database
from src.freshness import job_of, summarize_runs
from src.run_history import RunHistory
from src.runner import Runner
from src.settings import validate_datasets
from tests.helpers import requires_samples, run_script, write_dataset_config
from utils.gho_samples import generate_rows

ROWS = 240
NEWER = "2025-03-01T10:00:00Z"


def _job(settings, name="probed"):
    """{phase: outcome} of one job of `name`, recorded in the run history."""
    database = Database(settings)
    history = RunHistory(database, trigger="test")
    try:
        return {o.phase: o for o in Runner(settings, database, history).run_job(settings.datasets[name])}
    finally:
        history.close()


def _data_requests(stub):
    return [entry for entry in stub.state.request_log() if not entry["path"].startswith("/_control")]


def _query(url, text, params=None):
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(text, params)
        rows = cursor.fetchall() if cursor.description else None
    connection.close()
    return rows


def _last_job(url, dataset="probed"):
    from src.contracts import ledger

    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        runs = summarize_runs(ledger.runs_of(cursor, "complete"))
    connection.close()
    return job_of(runs.get(dataset))


@pytest.fixture
def probed(make_settings, stub):
    stub.set_rows("GEN_P", generate_rows("GEN_P", ROWS))
    return make_settings({"probed": {"indicator": "GEN_P"}}, full_refresh_days=7)


def _assert_probe_skipped(job, stub_requests, rows=ROWS):
    assert job["extract"].unchanged_by == "probe", job["extract"].summary()
    assert [job[p].unchanged_by for p in ("transform", "load")] == ["probe", "probe"]
    assert sum(o.rows_written for o in job.values() if o.phase != "extract") == 0
    assert job["extract"].source_count == rows
    assert 1 <= len(stub_requests) <= 2, stub_requests
    assert all("%24select=Date%2CId" in entry["query"] for entry in stub_requests)


def test_an_unchanged_refresh_asks_one_question_and_writes_nothing(probed, stub, database_url):
    first = _job(probed)
    assert first["load"].rows_written == ROWS and first["extract"].unchanged_by is None
    xmins = _query(database_url, "SELECT count(DISTINCT xmin::text) FROM probed")
    stub.clear_requests()
    second = _job(probed)
    _assert_probe_skipped(second, _data_requests(stub))
    assert _query(database_url, "SELECT count(DISTINCT xmin::text) FROM probed") == xmins
    assert not list(Layout(probed.data_dir).landing("probed").iterdir())
    job = _last_job(database_url)
    assert (job["outcome"], job["unchanged_by"], job["rows_written"], job["rows_checked"]) == (
        "unchanged",
        "probe",
        0,
        ROWS,
    )
    assert second["load"].summary().startswith("load probed: unchanged (probe), nothing to do")


def test_a_dataset_of_two_indicators_is_probed_once_per_indicator(make_settings, stub):
    stub.set_rows("GEN_A", generate_rows("GEN_A", 90))
    stub.set_rows("GEN_B", generate_rows("GEN_B", 60, seed=2))
    settings = make_settings({"probed": {"indicators": ["GEN_A", "GEN_B"]}}, full_refresh_days=7)
    _job(settings)
    stub.clear_requests()
    second = _job(settings)
    requests = _data_requests(stub)
    _assert_probe_skipped(second, requests, rows=150)
    assert sorted(entry["path"].rsplit("/", 1)[-1] for entry in requests) == ["GEN_A", "GEN_B"]
    rows = generate_rows("GEN_B", 60, seed=2)
    rows[-1]["Date"] = NEWER
    stub.set_rows("GEN_B", rows)
    assert _job(settings)["extract"].unchanged_by is None


def _newer_date_on(rows, position):
    rows[position]["Date"] = NEWER
    return rows


@pytest.mark.parametrize(
    "change, next_probe",
    [
        pytest.param(lambda rows: rows[:-1], "probe", id="a row deleted"),
        pytest.param(lambda rows: _newer_date_on(rows, ROWS // 2), "probe", id="a newer Date, same count"),
        # The latest row is the first: a server ignoring $orderby would name it too, so it proves nothing.
        pytest.param(lambda rows: _newer_date_on(rows, 0), None, id="a newer Date on the first row"),
    ],
)
def test_a_changed_count_or_a_newer_date_downloads(probed, stub, database_url, change, next_probe):
    _job(probed)
    rows = change(generate_rows("GEN_P", ROWS))
    for row in rows:
        if row["Date"] == NEWER:
            row["NumericValue"] = 1.25
    stub.set_rows("GEN_P", rows)
    job = _job(probed)
    assert job["extract"].unchanged_by is None and job["extract"].rows_written == len(rows)
    assert job["load"].rows_written >= 1 or len(rows) < ROWS
    assert job["load"].unchanged_by is None
    assert _job(probed)["extract"].unchanged_by == next_probe, "the new download is what the next probe compares with"


def test_full_refresh_an_old_download_and_probe_false_download(probed, make_settings, stub, database_url):
    _job(probed)
    assert _job(replace(probed, full_refresh=True))["extract"].unchanged_by is None
    assert _job(replace(probed, full_refresh_days=0))["extract"].unchanged_by is None
    record = Layout(probed.data_dir).path(layout.last_download("probed"))
    kept = json.loads(record.read_text())
    kept["finished_at"] = (datetime.now(timezone.utc) - timedelta(days=7, minutes=1)).isoformat()
    record.write_text(json.dumps(kept))
    assert _job(probed)["extract"].unchanged_by is None, "older than GHO_FULL_REFRESH_DAYS=7"
    assert _job(probed)["extract"].unchanged_by == "probe"
    stub.clear_requests()
    unprobed = replace(probed, datasets=validate_datasets({"probed": {"indicator": "GEN_P", "probe": False}}))
    job = _job(unprobed)
    assert job["extract"].unchanged_by is None and job["extract"].rows_written == ROWS
    assert not any("select" in entry["query"] for entry in _data_requests(stub)), "probe: false asks no probe"


def test_a_changed_request_resets_what_the_probe_compares_with(probed, stub):
    _job(probed)
    filtered = replace(
        probed, datasets=validate_datasets({"probed": {"indicator": "GEN_P", "filter": "TimeDim ge 1970"}})
    )
    assert _job(filtered)["extract"].unchanged_by is None
    assert _job(filtered)["extract"].unchanged_by == "probe"
    assert _job(replace(probed, page_size=70))["extract"].unchanged_by is None, "the filter went: a new request"
    assert _job(replace(probed, page_size=70))["extract"].unchanged_by == "probe"
    assert _job(probed)["extract"].unchanged_by == "probe", "the page size does not change the rows asked for"


def _without_dates(rows):
    for row in rows:
        del row["Date"]
    return rows


@pytest.mark.parametrize(
    "mode, rows_of",
    [
        ({"ignore_orderby": True}, None),
        ({"ignore_select": True}, None),
        ({"ignore_top": True}, None),
        ({"no_count": True}, None),
        ({}, _without_dates),
    ],
    ids=["ignores $orderby", "ignores $select", "ignores $top", "no @odata.count", "no Date"],
)
def test_a_server_that_answers_the_probe_wrongly_never_skips_a_download(probed, stub, database_url, mode, rows_of):
    rows = generate_rows("GEN_P", ROWS)
    stub.set_rows("GEN_P", rows_of(rows) if rows_of else rows)
    stub.set_mode(**mode)
    assert _job(probed)["load"].rows_written == ROWS
    again = _job(probed)
    assert again["extract"].unchanged_by is None, "unchanged, but nothing proves it: downloaded"
    changed = generate_rows("GEN_P", ROWS)
    for row in changed[ROWS // 2 :]:
        row["Date"], row["NumericValue"] = NEWER, 2.5
    stub.set_rows("GEN_P", _without_dates(changed) if rows_of else changed)
    job = _job(probed)
    assert job["extract"].unchanged_by is None and job["load"].rows_written == ROWS - ROWS // 2
    [(values,)] = _query(database_url, "SELECT count(*) FROM probed WHERE numeric_value = 2.5")
    assert values == ROWS - ROWS // 2


def test_a_second_identical_download_is_neither_transformed_nor_loaded(make_settings, stub, database_url):
    stub.set_rows("GEN_P", generate_rows("GEN_P", ROWS))
    settings = make_settings({"probed": {"indicator": "GEN_P", "probe": False}}, full_refresh_days=7)
    _job(settings)
    staging = Layout(settings.data_dir).staging("probed")
    before = staging.stat().st_mtime_ns
    [(batches,)] = _query(database_url, "SELECT count(*) FROM etl_batches")
    job = _job(settings)
    assert job["extract"].unchanged_by is None and job["extract"].rows_written == ROWS
    assert [job[p].unchanged_by for p in ("transform", "load")] == ["same pages", "same pages"]
    assert staging.stat().st_mtime_ns == before, "no staging file was written"
    assert not list(Layout(settings.data_dir).landing("probed").iterdir()), "the landing batch is deleted"
    [(skipped, batch_rows)] = _query(
        database_url, "SELECT skipped, rows_staged FROM etl_batches ORDER BY loaded_at DESC, batch_id DESC LIMIT 1"
    )
    assert (skipped, batch_rows) == (True, ROWS)
    assert _query(database_url, "SELECT count(*) FROM etl_batches") == [(batches + 1,)]
    last = _last_job(database_url)
    assert (last["outcome"], last["unchanged_by"], last["rows_checked"]) == ("unchanged", "same pages", ROWS)
    _query(database_url, "UPDATE probed SET numeric_value = -1 WHERE id = 7")
    repaired = _job(settings)
    assert repaired["load"].unchanged_by is None and repaired["load"].rows_written == 1, "a hand edit is repaired"
    assert _query(database_url, "SELECT count(*) FROM probed WHERE numeric_value = -1") == [(0,)]


@requires_samples
def test_an_unchanged_refresh_of_the_real_sample_is_probed(make_settings, stub, database_url):
    settings = make_settings(full_refresh_days=7)
    assert _job(settings, "life_expectancy_at_birth")["load"].rows_written == 12936
    stub.clear_requests()
    _assert_probe_skipped(_job(settings, "life_expectancy_at_birth"), _data_requests(stub), rows=12936)


def test_a_table_that_no_longer_holds_its_last_batch_is_downloaded_in_full(probed, stub, database_url):
    """The probe says nothing changed at the source; the table says otherwise: a full download repairs it."""
    _job(probed)
    _query(database_url, "UPDATE probed SET numeric_value = -1 WHERE id = 7")
    stub.clear_requests()
    job = _job(probed)
    assert job["extract"].unchanged_by is None and job["load"].rows_written == 1
    assert any("select" in entry["query"] for entry in _data_requests(stub)), "the probe was asked first"
    assert _query(database_url, "SELECT count(*) FROM probed WHERE numeric_value = -1") == [(0,)]
    chosen = replace(
        probed,
        datasets=validate_datasets({"probed": {"indicator": "GEN_P", "columns": ["numeric_value", "comments"]}}),
    )
    assert _job(chosen)["extract"].unchanged_by is None, "another choice of columns: the table must follow it"
    assert _job(chosen)["extract"].unchanged_by == "probe"


def test_the_scripts_say_unchanged_probe_and_full_refresh_downloads(tmp_path, script_env, stub):
    stub.set_rows("GEN_P", generate_rows("GEN_P", ROWS))
    config = write_dataset_config(tmp_path, {"probed": {"indicator": "GEN_P"}})
    env = dict(script_env, DATASET_CONFIG_FILE=str(config), GHO_FULL_REFRESH_DAYS="7")
    run_script("start_scheduler.py", "--once", env=env, check=0)
    second = run_script("start_scheduler.py", "--once", env=env, check=0).stdout
    assert f"extract probed: unchanged (probe), nothing downloaded, {ROWS} rows as before" in second
    assert "transform probed: unchanged (probe), nothing to do" in second
    assert "load probed: unchanged (probe), nothing to do" in second
    status = run_script("status.py", env=env, check=0).stdout
    assert "last job: unchanged (probe) at " in status
    full = run_script("start_extract.py", "--full-refresh", env=env, check=0).stdout
    assert f"extract probed: {ROWS} rows (source count {ROWS})" in full
    refused = run_script("start_scheduler.py", "--full-refresh", env=env, check=2)
    assert "--full-refresh goes with --once" in refused.stderr


def test_a_first_run_says_nothing_about_a_ledger_that_does_not_exist_yet(script_env):
    env = dict(script_env, GHO_FULL_REFRESH_DAYS="7")
    first = run_script("start_scheduler.py", "--once", env=env, check=0)
    assert "does not exist" not in first.stdout + first.stderr
    assert "does not hold its last batch" not in first.stdout + first.stderr
