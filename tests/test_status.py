"""status.py says whether each dataset is fresh: its last complete job, what waits, its rows, when values changed.

Run as a user would (the scripts), against the stand-in and a real PostgreSQL.
"""

import json
from datetime import datetime

import psycopg2
import pytest

from tests.helpers import run_script, write_dataset_config
from utils.gho_samples import generate_rows

ROWS = 60
NOTHING_WAITS = {"landing": [], "staging": [], "landing_incomplete": []}


@pytest.fixture
def env(tmp_path, script_env, stub):
    stub.set_rows("GEN_F", generate_rows("GEN_F", ROWS))
    config = write_dataset_config(tmp_path, {"fresh": {"indicator": "GEN_F"}})
    return dict(script_env, DATASET_CONFIG_FILE=str(config))


def _status(env):
    """(the dataset's entry in status.py --json, the text of status.py)."""
    shown = json.loads(run_script("status.py", "--json", env=env, check=0).stdout)
    [entry] = shown["datasets"]
    return entry, run_script("status.py", env=env, check=0).stdout


def _query(url, text):
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(text)
        rows = cursor.fetchall() if cursor.description else None
    connection.close()
    return rows


def _line(text, start):
    """The one line of `text` that starts with `start` (after its indent)."""
    [line] = [line.strip() for line in text.splitlines() if line.strip().startswith(start)]
    return line


def test_a_first_run_shows_its_rows_and_when_values_changed(env, database_url):
    run_script("start_scheduler.py", "--once", env=env, check=0)
    entry, text = _status(env)
    job = entry["last_job"]
    assert (job["outcome"], job["rows_written"], job["rows_checked"], job["error"]) == ("succeeded", ROWS, ROWS, None)
    assert entry["rows"] == ROWS and entry["rows_estimated"] is False
    [(batch_id, loaded_at)] = _query(database_url, "SELECT batch_id, loaded_at FROM etl_batches")
    assert datetime.fromisoformat(entry["last_changed"]) == loaded_at
    assert entry["last_changed_by"] == {"batch_id": batch_id, "rows_inserted": ROWS, "rows_updated": 0}
    assert entry["waiting"] == NOTHING_WAITS
    assert _line(text, "last job:").startswith(f"last job: succeeded ({ROWS} rows written of {ROWS} staged) at ")
    assert _line(text, "table:") == f"table: {ROWS} rows"
    assert _line(text, "last changed:").endswith(f"(batch {batch_id}: {ROWS} rows inserted, 0 updated)")
    assert _line(text, "waiting:") == "waiting: nothing (landing and staging are empty)"


def test_an_unchanged_run_says_unchanged_and_keeps_the_time_values_last_changed(env, stub):
    env = dict(env, GHO_FULL_REFRESH_DAYS="7")  # the change probe on, as by default
    run_script("start_scheduler.py", "--once", env=env, check=0)
    first, _ = _status(env)
    run_script("start_scheduler.py", "--once", env=env, check=0)
    second, text = _status(env)
    job = second["last_job"]
    assert job["run_id"] != first["last_job"]["run_id"]
    assert (job["outcome"], job["rows_written"], job["rows_checked"]) == ("unchanged", 0, ROWS)
    assert second["last_changed"] == first["last_changed"] and second["rows"] == ROWS
    assert job["unchanged_by"] == "probe"  # the change probe found nothing new: nothing was downloaded
    assert _line(text, "last job:").startswith("last job: unchanged (probe) at ")
    assert _line(text, "last job:").endswith(
        f"nothing downloaded: the API counts {ROWS} rows and names the same " "latest row as the last download"
    )
    assert "rows written of" not in text
    assert second["last_run"]["outcome"] == "succeeded"  # the run itself, as scripts read it before
    run_script("start_scheduler.py", "--once", "--full-refresh", env=env, check=0)
    fourth, text = _status(env)
    assert (fourth["last_job"]["outcome"], fourth["last_job"]["unchanged_by"]) == ("unchanged", "same pages")
    assert _line(text, "last job:").endswith(
        f"the download equals the batch last loaded ({ROWS} rows): not " "transformed, not loaded"
    )
    assert fourth["last_changed"] == first["last_changed"]
    stub.set_rows("GEN_F", generate_rows("GEN_F", ROWS, vary_every=3))
    run_script("start_scheduler.py", "--once", env=env, check=0)
    third, _ = _status(env)
    assert (third["last_job"]["outcome"], third["last_job"]["rows_written"]) == ("succeeded", ROWS // 3)
    assert datetime.fromisoformat(third["last_changed"]) > datetime.fromisoformat(first["last_changed"])
    assert third["last_changed_by"]["rows_updated"] == ROWS // 3


def test_a_batch_waiting_in_landing_or_staging_is_shown_as_waiting_not_as_succeeded(env):
    run_script("start_extract.py", env=env, check=0)
    entry, text = _status(env)
    [batch] = entry["waiting"]["landing"]
    assert entry["waiting"] == dict(NOTHING_WAITS, landing=[batch])
    assert entry["last_job"] is None and entry["last_run"]["outcome"] == "incomplete"
    assert entry["rows"] is None and entry["last_changed"] is None
    assert "succeeded" not in text
    assert _line(text, "waiting:") == "waiting: 1 batch in landing (extract done, transform not yet)"
    assert _line(text, "last job:") == "last job: never"
    assert _line(text, "latest run:").endswith("extract done; transform and load not run yet")
    assert _line(text, "table:") == "table: missing (no load has made it yet)"
    run_script("start_transform.py", env=env, check=0)
    entry, text = _status(env)
    assert entry["waiting"] == dict(NOTHING_WAITS, staging=[batch])
    assert _line(text, "waiting:") == "waiting: 1 batch in staging (transform done, load not yet)"
    assert "succeeded" not in text
    run_script("start_load.py", env=env, check=0)
    entry, text = _status(env)
    assert entry["waiting"] == NOTHING_WAITS and entry["last_job"]["outcome"] == "succeeded"
    assert entry["rows"] == ROWS and "latest run:" not in text


def test_a_failed_load_shows_failed_with_its_error_and_its_batch_waiting(env, stub, database_url):
    run_script("start_scheduler.py", "--once", env=env, check=0)
    first, _ = _status(env)
    _query(database_url, "DROP VIEW fresh_labeled; ALTER TABLE fresh ALTER COLUMN comments TYPE varchar(200)")
    stub.set_rows("GEN_F", generate_rows("GEN_F", ROWS, vary_every=2))
    assert run_script("start_scheduler.py", "--once", env=env).returncode == 1
    entry, text = _status(env)
    job = entry["last_job"]
    assert (job["outcome"], job["failed_phase"], job["rows_written"]) == ("failed", "load", None)
    assert "column comments is character varying, expected text" in job["error"]
    assert len(entry["waiting"]["staging"]) == 1 and entry["waiting"]["landing"] == []
    assert entry["rows"] == ROWS and entry["last_changed"] == first["last_changed"]
    assert _line(text, "last job:").startswith("last job: failed at ")
    assert _line(text, "last job:").endswith("in load: " + job["error"])
    assert _line(text, "waiting:") == "waiting: 1 batch in staging (transform done, load not yet)"


def test_a_failed_extract_shows_failed_and_its_incomplete_batch(env, stub):
    env = dict(env, GHO_PAGE_SIZE="20")
    stub.add_fault("status", status=404, times=100, after=1)
    assert run_script("start_scheduler.py", "--once", env=env).returncode == 1
    entry, text = _status(env)
    job = entry["last_job"]
    assert (job["outcome"], job["failed_phase"]) == ("failed", "extract") and "404" in job["error"]
    [batch] = entry["waiting"]["landing_incomplete"]
    assert entry["waiting"] == dict(NOTHING_WAITS, landing_incomplete=[batch])
    assert _line(text, "waiting:") == (
        "waiting: 1 incomplete batch in landing (extract interrupted or running; the next extract resumes it)"
    )


def test_json_keeps_every_key_it_had_and_adds_the_freshness_ones(env):
    run_script("start_scheduler.py", "--once", env=env, check=0)
    shown = json.loads(run_script("status.py", "--json", env=env, check=0).stdout)
    assert set(shown) == {"scheduler", "datasets", "unknown_datasets", "history_error", "reference"}
    [entry] = shown["datasets"]
    before = {"dataset", "indicator", "table", "enabled", "schedule", "next_run", "last_run"}
    added = {"last_job", "waiting", "rows", "rows_estimated", "last_changed", "last_changed_by"}
    assert set(entry) == before | added
    run = {"run_id", "trigger", "started_at", "finished_at", "phases", "outcome", "duration_s"}
    assert set(entry["last_run"]) == run | {"rows_loaded", "rows_staged"}
    assert set(entry["last_run"]["phases"]["load"]) == {
        "status",
        "rows_in",
        "rows_written",
        "rows_rejected",
        "error",
        "unchanged_by",
    }
    job = {"rows_written", "rows_checked", "rows_rejected", "error", "failed_phase", "unchanged_by"}
    assert set(entry["last_job"]) == run - {"phases"} | job
    assert set(entry["waiting"]) == set(NOTHING_WAITS)


def test_without_the_database_status_still_shows_what_waits(env):
    run_script("start_extract.py", env=env, check=0)
    away = dict(env, DATABASE_URL="postgresql://etl@127.0.0.1:9/gho")
    entry, text = _status(away)
    assert entry["last_job"] is None and entry["rows"] is None and entry["last_changed"] is None
    assert len(entry["waiting"]["landing"]) == 1
    assert text.splitlines()[1].startswith("run history unavailable: cannot connect to ")
    assert _line(text, "last job:") == "last job: unknown (run history unavailable)"
    assert _line(text, "table:") == "table: unknown (database unavailable)"
    assert _line(text, "waiting:") == "waiting: 1 batch in landing (extract done, transform not yet)"


def test_when_the_ledger_no_longer_holds_the_change_the_table_says_when(env, database_url):
    run_script("start_scheduler.py", "--once", env=env, check=0)
    first, _ = _status(env)
    run_script("start_scheduler.py", "--once", env=env, check=0)
    # What GHO_HISTORY_DAYS does to a dataset unchanged for longer: only the latest (skipped) batch's row stays.
    _query(database_url, "DELETE FROM etl_batches WHERE NOT skipped")
    entry, text = _status(env)
    assert entry["last_changed"] == first["last_changed"] and entry["last_changed_by"] is None
    assert _line(text, "last changed:").endswith("(the newest _loaded_at in the table; etl_batches no longer holds it)")


def test_a_replace_that_rewrites_the_same_values_is_not_a_change(tmp_path, script_env, stub):
    rows = generate_rows("GEN_F", ROWS)
    stub.set_rows("GEN_F", rows)
    config = write_dataset_config(tmp_path, {"fresh": {"indicator": "GEN_F", "mode": "replace"}})
    env = dict(script_env, DATASET_CONFIG_FILE=str(config))
    run_script("start_scheduler.py", "--once", env=env, check=0)
    first, _ = _status(env)
    stub.set_rows("GEN_F", [dict(row, Id=row["Id"] + 10**6) for row in rows])  # GHO's Ids change between downloads
    run_script("start_scheduler.py", "--once", env=env, check=0)
    second, _ = _status(env)
    assert second["last_job"]["rows_written"] == ROWS  # replace rewrote every row ...
    assert second["last_changed"] == first["last_changed"]  # ... with the values it had


def test_a_locked_table_gives_an_estimate_instead_of_a_hang(env, database_url):
    run_script("start_scheduler.py", "--once", env=env, check=0)
    holder = psycopg2.connect(database_url)
    try:
        with holder.cursor() as cursor:
            cursor.execute("LOCK TABLE fresh IN ACCESS EXCLUSIVE MODE")
        entry, text = _status(env)
    finally:
        holder.rollback()
        holder.close()
    assert entry["rows"] == ROWS and entry["rows_estimated"] is True
    assert _line(text, "table:").startswith(f"table: about {ROWS} rows (an estimate: ")


def test_a_job_killed_during_its_load_reads_abandoned_with_its_batch_waiting(env):
    killed = run_script("start_scheduler.py", "--once", env=dict(env, GHO_ETL_CRASH_AT="load.applied"))
    assert killed.returncode != 0
    entry, text = _status(env)
    assert entry["last_run"]["outcome"] == "abandoned" and entry["last_job"] is None
    assert len(entry["waiting"]["staging"]) == 1 and entry["rows"] is None
    assert _line(text, "latest run:").endswith("its process ended during load; the next run resumes it")
    assert "succeeded" not in text
