"""Settings that once got past validation: each now stops the command with exit 2 and one line, nothing done.

Run as a user would: the script with one hostile value in its environment.
"""

import os

import pytest

from tests.helpers import run_script, write_dataset_config


def _refused(result, tmp_path, *expected):
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in expected:
        assert text in lines[0]
    assert not (tmp_path / "data").exists(), "nothing may be done before the settings are valid"


@pytest.mark.parametrize("port", ["abc", "70000", "5432,x", "-1"])
def test_a_pgport_that_is_not_a_port(script_env, tmp_path, port):
    env = dict(script_env, PGPORT=port, PGHOST="127.0.0.1")
    env.pop("DATABASE_URL")
    _refused(run_script("start_extract.py", env=env), tmp_path, f"PGPORT={port!r} is not a port")


def test_a_missing_env_file_is_named(script_env, tmp_path):
    missing = tmp_path / "prod.env"
    result = run_script("start_extract.py", env=dict(script_env, GHO_ENV_FILE=str(missing)))
    _refused(result, tmp_path, f"GHO_ENV_FILE={str(missing)!r} is not a file")


def test_a_log_dir_that_cannot_be_made(script_env, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_script("start_extract.py", env=dict(script_env, GHO_LOG_DIR=str(blocker / "logs")))
    _refused(result, tmp_path, "GHO_LOG_DIR=", "cannot hold the log")


def test_a_schedule_beyond_a_year(script_env, tmp_path):
    config = write_dataset_config(tmp_path, {"a": {"indicator": "WHOSIS_000001", "schedule": "every 99999999999 days"}})
    result = run_script("start_scheduler.py", "--once", env=dict(script_env, DATASET_CONFIG_FILE=str(config)))
    _refused(result, tmp_path, "DATASET_CONFIG['a'].schedule:", "longer than a year")


def _deep(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    return path


def _fifo(tmp_path):
    path = tmp_path / "datasets.fifo"
    os.mkfifo(path)
    return path


def _huge(tmp_path):
    path = tmp_path / "huge.json"
    path.write_text('{"a": {"indicator": "WHOSIS_000001", "filter": "' + "x" * (5 * 1024 * 1024) + '"}}')
    return path


@pytest.mark.parametrize(
    "make, reason",
    [
        (_fifo, "is not a regular file"),
        (lambda tmp_path: "/dev/zero", "is not a regular file"),
        (_deep, "nested too deeply"),
        (_huge, "larger than 4 MiB"),
    ],
    ids=["fifo", "dev-zero", "deeply-nested", "huge"],
)
def test_a_dataset_file_that_is_not_a_small_regular_file(script_env, tmp_path, make, reason):
    source = make(tmp_path)
    result = run_script("start_extract.py", env=dict(script_env, DATASET_CONFIG_FILE=str(source)), timeout=30)
    _refused(result, tmp_path, "DATASET_CONFIG_FILE", reason)


@pytest.mark.parametrize("timeout", ["-5", "nan", "1e9"])
def test_stop_scheduler_refuses_a_timeout_out_of_range(script_env, tmp_path, timeout):
    result = run_script("stop_scheduler.py", "--timeout", timeout, env=script_env)
    assert result.returncode == 2
    assert "--timeout must be between 0 and 86400 seconds" in result.stderr


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("GHO_ALERT_WEBHOOK", "ftp://hooks.example/x", "GHO_ALERT_WEBHOOK must be an http:// or https:// URL"),
        ("GHO_ALERT_WEBHOOK", "https:///no-host", "GHO_ALERT_WEBHOOK must be an http:// or https:// URL"),
        ("GHO_ALERT_TIMEOUT", "nan", "GHO_ALERT_TIMEOUT='nan' is not a finite number"),
        ("GHO_ALERT_TIMEOUT", "0", "GHO_ALERT_TIMEOUT='0' must be between 1 and 120"),
        ("GHO_ALERT_RECOVERY", "maybe", "GHO_ALERT_RECOVERY='maybe' must be true or false"),
        ("GHO_HISTORY_DAYS", "0", "GHO_HISTORY_DAYS='0' must be between 1 and 36500"),
        ("GHO_PAGE_CONCURRENCY", "0", "GHO_PAGE_CONCURRENCY='0' must be between 1 and 32"),
        ("GHO_PAGE_CONCURRENCY", "33", "GHO_PAGE_CONCURRENCY='33' must be between 1 and 32"),
        ("GHO_PAGE_CONCURRENCY", "2.5", "GHO_PAGE_CONCURRENCY='2.5' is not a whole number"),
        ("GHO_REQUESTS_IN_FLIGHT", "0", "GHO_REQUESTS_IN_FLIGHT='0' must be between 1 and 64"),
        ("GHO_REQUESTS_IN_FLIGHT", "65", "GHO_REQUESTS_IN_FLIGHT='65' must be between 1 and 64"),
        ("GHO_REQUESTS_IN_FLIGHT", "many", "GHO_REQUESTS_IN_FLIGHT='many' is not a whole number"),
        ("GHO_HISTORY_RUNS", "abc", "GHO_HISTORY_RUNS='abc' is not a whole number"),
        ("GHO_DB_SCHEMA", "x; DROP SCHEMA public", "GHO_DB_SCHEMA='x; drop schema public' must be a plain identifier"),
        ("GHO_REFERENCE_HOURS", "nan", "GHO_REFERENCE_HOURS='nan' is not a finite number"),
        ("GHO_REFERENCE_HOURS", "-1", "GHO_REFERENCE_HOURS='-1' must be between 0 and 8760"),
        ("GHO_DATASETS_FILE", "/", "GHO_DATASETS_FILE /: is not a regular file"),
    ],
)
def test_a_new_setting_out_of_range(script_env, tmp_path, variable, value, message):
    _refused(run_script("start_extract.py", env=dict(script_env, **{variable: value})), tmp_path, message)
