"""The scheduler as real processes: start, refuse a second, stop, stale pid, failures, overlap, catch-up, logs."""

import json
import signal
import subprocess
import sys
import time

import psycopg2
import pytest

from src.storage.disk import TEMP_PREFIX
from tests.helpers import PROJECT_ROOT, run_script, write_dataset_config
from utils.gho_samples import generate_rows

SCRIPT = str(PROJECT_ROOT / "scripts" / "start_scheduler.py")


def wait_for(condition, timeout=30.0, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def query(url, text, params=None):
    connection = psycopg2.connect(url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(text, params)
            return cursor.fetchall() if cursor.description else None
    finally:
        connection.close()


def table_rows(url, table):
    try:
        return query(url, f"SELECT count(*) FROM {table}")[0][0]
    except psycopg2.errors.UndefinedTable:
        return 0


def runs(url, dataset=None):
    try:
        rows = query(url, "SELECT dataset, phase, status, trigger FROM etl_runs ORDER BY id")
    except psycopg2.errors.UndefinedTable:
        return []
    return [r for r in rows if dataset is None or r[0] == dataset]


@pytest.fixture
def config_env(tmp_path, script_env, stub):
    """script_env with a DATASET_CONFIG_FILE of small generated indicators."""
    stub.set_rows("GEN_A", generate_rows("GEN_A", 300))
    stub.set_rows("GEN_B", generate_rows("GEN_B", 200))

    def build(config):
        return dict(script_env, DATASET_CONFIG_FILE=str(write_dataset_config(tmp_path, config)))

    return build


def start_foreground(env, *args):
    return subprocess.Popen(
        [sys.executable, SCRIPT, "--foreground", *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_detached_start_status_second_start_and_stop(config_env, database_url, tmp_path):
    env = config_env({"alpha": {"indicator": "GEN_A", "schedule": "every 2 seconds"}})
    started = run_script("start_scheduler.py", env=env, check=0)
    assert started.stdout.startswith("scheduler started in the background (pid ")
    pid = int((tmp_path / "data" / "scheduler.pid").read_text())
    try:
        wait_for(lambda: table_rows(database_url, "alpha") == 300, what="the first run to load alpha")
        second = run_script("start_scheduler.py", env=env)
        assert second.returncode == 3
        assert second.stderr.strip() == f"error: scheduler already running (pid {pid})"
        status = json.loads(run_script("status.py", "--json", env=env, check=0).stdout)
        assert status["scheduler"]["running"] and status["scheduler"]["pid"] == pid
        [alpha] = status["datasets"]
        assert alpha["schedule"] == "every 2 seconds" and alpha["next_run"]
        wait_for(
            lambda: len([r for r in runs(database_url, "alpha") if r[1] == "load"]) >= 2, what="a second scheduled run"
        )
    finally:
        stopped = run_script("stop_scheduler.py", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.splitlines()[-1].startswith(f"scheduler (pid {pid}) stopped after ")
    assert not (tmp_path / "data" / "scheduler.pid").exists()
    assert run_script("stop_scheduler.py", env=env, check=0).stdout.strip() == "scheduler is not running"
    # Nothing half-done is left: no temp files, no incomplete landing batch, table intact.
    data = tmp_path / "data"
    assert not [p for p in data.rglob(TEMP_PREFIX + "*") if "postgres" not in p.parts]
    for batch in (data / "landing" / "alpha").iterdir():
        assert (batch / "manifest.json").exists()
    assert table_rows(database_url, "alpha") == 300
    assert all(r[2] != "running" for r in runs(database_url))


def test_a_guessed_detach_option_is_refused_and_starts_nothing(config_env, tmp_path):
    """The background process is marked by the environment: `--detach` is not an abbreviation of anything."""
    env = config_env({"alpha": {"indicator": "GEN_A", "schedule": "every day at 02:00"}})
    result = run_script("start_scheduler.py", "--detach", env=env, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith("error: unrecognized arguments: --detach")
    assert not (tmp_path / "data" / "scheduler.pid").exists()


def test_stale_pid_file_is_replaced(config_env, tmp_path):
    env = config_env({"alpha": {"indicator": "GEN_A", "schedule": "every day at 02:00"}})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "data").mkdir(parents=True)
    (tmp_path / "data" / "scheduler.pid").write_text(str(dead.pid))
    assert run_script("stop_scheduler.py", env=env, check=0).stdout.strip() == (
        "scheduler is not running (removed a stale pid file)"
    )
    (tmp_path / "data" / "scheduler.pid").write_text(str(dead.pid))
    run_script("start_scheduler.py", env=env, check=0)
    try:
        assert int((tmp_path / "data" / "scheduler.pid").read_text()) != dead.pid
    finally:
        run_script("stop_scheduler.py", env=env, check=0)


def test_once_runs_every_job_and_a_failure_does_not_stop_others(config_env, database_url):
    env = config_env(
        {
            "broken": {"indicator": "NO_SUCH_INDICATOR"},
            "alpha": {"indicator": "GEN_A"},
            "beta": {"indicator": "GEN_B"},
        }
    )
    result = run_script("start_scheduler.py", "--once", env=env)
    assert result.returncode == 1
    assert "error: extract broken: FAILED" in result.stderr and "indicator NO_SUCH_INDICATOR not found" in result.stderr
    assert (table_rows(database_url, "alpha"), table_rows(database_url, "beta")) == (300, 200)
    assert ("broken", "extract", "failed", "once") in runs(database_url)
    assert not [r for r in runs(database_url, "broken") if r[1] != "extract"]


def test_overlapping_run_is_skipped(config_env, database_url, tmp_path, stub):
    stub.add_fault("slow", seconds=4, path="GEN_A")
    env = config_env({"alpha": {"indicator": "GEN_A", "schedule": "every 1 seconds"}})
    process = start_foreground(env, "--run-now")
    try:
        wait_for(lambda: table_rows(database_url, "alpha") == 300, what="the slow run to finish")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    log = (tmp_path / "logs" / "gho_etl.jsonl").read_text()
    assert "skipping this schedule slot of alpha: its previous run is still going" in log
    assert stub.requests[0].get("fault") == "slow"
    # While the first extract hung for 4s no second run started beside it (it
    # would have hit the extract lock and been recorded as failed).
    history = runs(database_url, "alpha")
    assert history and all(status == "succeeded" for _, _, status, _ in history)


def test_catch_up_runs_only_overdue_datasets(config_env, database_url):
    env = config_env(
        {
            "alpha": {"indicator": "GEN_A", "schedule": "every day at 02:00"},
            "beta": {"indicator": "GEN_B", "schedule": "every day at 02:00"},
        }
    )
    # A history where alpha last loaded two days ago and beta an hour ago.
    run_script("start_scheduler.py", "--once", env=env, check=0)
    query(database_url, "UPDATE etl_runs SET finished_at = now() - interval '2 days' WHERE dataset = 'alpha'")
    query(database_url, "UPDATE etl_runs SET finished_at = now() - interval '1 hour' WHERE dataset = 'beta'")
    process = start_foreground(env)
    try:
        wait_for(lambda: ("alpha", "load", "succeeded", "scheduler") in runs(database_url), what="alpha catch-up")
        time.sleep(1.5)
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C stops it the same clean way
        assert process.wait(timeout=60) == 0
    assert not [r for r in runs(database_url, "beta") if r[3] == "scheduler"]


def test_json_log_lines_carry_context_and_no_secret(config_env, database_url, tmp_path):
    secret_url = database_url.replace("postgres:@", "postgres:hunter2secret@")
    env = dict(config_env({"alpha": {"indicator": "GEN_A"}}), DATABASE_URL=secret_url)
    result = run_script("start_scheduler.py", "--once", env=env, check=0)
    assert "hunter2secret" not in result.stdout + result.stderr
    text = (tmp_path / "logs" / "gho_etl.jsonl").read_text()
    assert "hunter2secret" not in text
    entries = [json.loads(line) for line in text.splitlines()]
    assert entries
    for entry in entries:
        assert {"timestamp", "level", "logger", "message"} <= set(entry)
    loaded = [e for e in entries if e["message"].startswith("loaded alpha batch")]
    assert loaded and loaded[0]["phase"] == "load" and loaded[0]["dataset"] == "alpha" and loaded[0]["run_id"]
    assert loaded[0]["rows"] == 300


def test_log_rotation_is_bounded(config_env, tmp_path):
    env = dict(config_env({"alpha": {"indicator": "GEN_A"}}), GHO_LOG_MAX_BYTES="2048", GHO_LOG_BACKUP_COUNT="2")
    for _ in range(3):
        run_script("start_scheduler.py", "--once", env=env, check=0)
    files = sorted(p.name for p in (tmp_path / "logs").glob("gho_etl.jsonl*"))
    assert files == ["gho_etl.jsonl", "gho_etl.jsonl.1", "gho_etl.jsonl.2"]


def test_stop_timeout_then_force(config_env, tmp_path, stub):
    stub.add_fault("slow", seconds=8, path="GEN_A")
    env = config_env({"alpha": {"indicator": "GEN_A", "schedule": "every day at 02:00"}})
    run_script("start_scheduler.py", "--run-now", env=env, check=0)
    wait_for(lambda: stub.requests, what="the job to reach the API")
    pid = int((tmp_path / "data" / "scheduler.pid").read_text())
    late = run_script("stop_scheduler.py", "--timeout", "1", env=env)
    assert late.returncode == 1
    assert f"scheduler (pid {pid}) is still running after 1s" in late.stderr and "--force" in late.stderr
    forced = run_script("stop_scheduler.py", "--timeout", "0.5", "--force", env=env, check=0)
    assert "was killed" in forced.stdout
    assert not (tmp_path / "data" / "scheduler.pid").exists()
    # The killed run left only resumable state: the next run completes it.
    stub.clear_faults()
    run_script("start_scheduler.py", "--once", env=env, check=0)


def test_workers_below_one_is_bad_usage_before_anything_runs(script_env, tmp_path):
    env = dict(script_env, GHO_PAGE_SIZE="not a number")  # usage is checked before the settings
    result = run_script("start_scheduler.py", "--once", "--workers", "0", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("error: --workers must be at least 1")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_once_runs_jobs_side_by_side_up_to_workers_and_reports_in_dataset_order(
    config_env, database_url, stub, workers
):
    stub.set_mode(latency=0.3)  # every answer waits: two jobs at once show as two requests in flight
    env = config_env({"alpha": {"indicator": "GEN_A"}, "beta": {"indicator": "GEN_B"}})
    result = run_script(
        "start_scheduler.py", "--once", "--workers", str(workers), env=dict(env, GHO_PAGE_CONCURRENCY="1")
    )
    assert stub.in_flight["max_in_flight"] == workers
    assert (table_rows(database_url, "alpha"), table_rows(database_url, "beta")) == (300, 200)
    summary = [line.split(":")[0] for line in result.stdout.splitlines()]
    assert summary == [f"{phase} {name}" for name in ("alpha", "beta") for phase in ("extract", "transform", "load")]
