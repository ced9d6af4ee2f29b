"""Configuration: defaults, .env handling, DATASET_CONFIG_FILE, and one clear line per bad entry."""

import os
import subprocess
import sys

import pytest

from src.errors import ConfigError
from src.settings import parse_schedule, validate_datasets
from tests.helpers import PROJECT_ROOT, run_script, write_dataset_config


def test_shipped_datasets():
    from config import config

    datasets = validate_datasets(config.DATASET_CONFIG)
    birth = datasets["life_expectancy_at_birth"]
    assert (birth.indicator, birth.enabled, birth.filter, birth.table, birth.mode) == (
        "WHOSIS_000001",
        True,
        None,
        "life_expectancy_at_birth",
        "merge",
    )
    at_60 = datasets["life_expectancy_at_60"]
    assert (at_60.indicator, at_60.enabled) == ("WHOSIS_000015", False)


def test_only_indicator_is_required():
    dataset = validate_datasets({"x": {"indicator": "WSH_8"}})["x"]
    assert dataset.enabled is True
    assert dataset.table == "x"
    assert dataset.mode == "merge"
    assert dataset.schedule.text == "every day at 02:00"


@pytest.mark.parametrize(
    "entry, key",
    [
        ({"indicator": "A", "colour": "red"}, "colour"),
        ({"enabled": True}, "indicator"),
        ({"indicator": "A", "table": "x; DROP TABLE y"}, "table"),
        ({"indicator": "A", "table": "etl_runs"}, "table"),
        ({"indicator": "A", "schedule": "sometimes"}, "schedule"),
        ({"indicator": "A", "schedule": "every day at 25:00"}, "schedule"),
        ({"indicator": "A", "mode": "upsert"}, "mode"),
        ({"indicator": "A", "enabled": "yes"}, "enabled"),
        ({"indicator": "A/../B"}, "indicator"),
        ({"indicator": "A", "filter": 5}, "filter"),
    ],
)
def test_bad_entry_names_dataset_and_key(entry, key):
    with pytest.raises(ConfigError) as caught:
        validate_datasets({"broken": entry})
    message = str(caught.value)
    assert "'broken'" in message and f".{key}" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "text, unit, interval, at",
    [
        ("every day at 02:00", "day", 1, "02:00:00"),
        ("every 6 hours", "hour", 6, None),
        ("every 30 minutes", "minute", 30, None),
        ("every monday at 09:00", "monday", 1, "09:00:00"),
        ("every 10 seconds", "second", 10, None),
        ("Every  Day at 7:05", "day", 1, "07:05:00"),
        ("every hour", "hour", 1, None),
    ],
)
def test_schedule_grammar(text, unit, interval, at):
    schedule = parse_schedule(text)
    assert (schedule.unit, schedule.interval, schedule.at) == (unit, interval, at)


def test_schedule_periods_and_timezone():
    assert parse_schedule("every 6 hours").period_seconds == 6 * 3600
    assert parse_schedule("every friday at 01:00").period_seconds == 7 * 86400
    assert parse_schedule("every day at 02:00 Europe/Berlin").timezone == "Europe/Berlin"
    with pytest.raises(ValueError, match="time zone"):
        parse_schedule("every day at 02:00 Mars/Olympus")


def test_bad_config_file_stops_script_before_any_work(tmp_path, script_env):
    config_file = write_dataset_config(tmp_path, {"broken": {"indicator": "WHOSIS_000001", "mode": "upsert"}})
    env = dict(script_env, DATASET_CONFIG_FILE=str(config_file))
    for script in ("start_extract.py", "start_transform.py", "start_load.py"):
        result = run_script(script, env=env)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert lines == ["error: DATASET_CONFIG['broken'].mode: 'upsert' is not one of merge, replace, append"]
    assert not (tmp_path / "data").exists()


def test_unreadable_config_file_is_one_line(tmp_path, script_env):
    bad = tmp_path / "datasets.json"
    bad.write_text("{not json")
    result = run_script("start_extract.py", env=dict(script_env, DATASET_CONFIG_FILE=str(bad)))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "DATASET_CONFIG_FILE" in result.stderr


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("GHO_PAGE_SIZE", "abc", "error: GHO_PAGE_SIZE='abc' is not a whole number"),
        ("GHO_HTTP_TIMEOUT", "soon", "error: GHO_HTTP_TIMEOUT='soon' is not a number"),
        ("GHO_REJECT_THRESHOLD", "2", "error: GHO_REJECT_THRESHOLD='2' must be between 0 and 1"),
        ("GHO_API_BASE_URL", "ftp://x", "error: GHO_API_BASE_URL='ftp://x' must start with http:// or https://"),
        (
            "GHO_API_BASE_URL",
            "http://h:99999/api",
            "error: GHO_API_BASE_URL='http://h:99999/api' is not a URL with a host (and a valid port)",
        ),
        (
            "GHO_API_BASE_URL",
            "http://[::1/api",
            "error: GHO_API_BASE_URL='http://[::1/api' is not a URL with a host (and a valid port)",
        ),
        (
            "GHO_API_BASE_URL",
            "http:///api",
            "error: GHO_API_BASE_URL='http:///api' is not a URL with a host (and a valid port)",
        ),
        ("GHO_REJECT_THRESHOLD", "nan", "error: GHO_REJECT_THRESHOLD='nan' is not a finite number"),
        ("GHO_HTTP_TIMEOUT", "nan", "error: GHO_HTTP_TIMEOUT='nan' is not a finite number"),
        ("GHO_HTTP_TIMEOUT", "inf", "error: GHO_HTTP_TIMEOUT='inf' is not a finite number"),
        ("GHO_HTTP_TIMEOUT", "1e12", "error: GHO_HTTP_TIMEOUT='1e12' must be between 0.1 and 86400"),
        ("GHO_BACKOFF_BASE", "nan", "error: GHO_BACKOFF_BASE='nan' is not a finite number"),
        ("GHO_BACKOFF_MAX", "1e9", "error: GHO_BACKOFF_MAX='1e9' must be between 0 and 86400"),
        ("GHO_MAX_PAGE_BYTES", "10", "error: GHO_MAX_PAGE_BYTES='10' must be between 65536 and 17179869184"),
    ],
)
def test_bad_variable_is_one_line(script_env, variable, value, message):
    result = run_script("start_extract.py", env=dict(script_env, **{variable: value}))
    assert result.returncode == 2
    assert result.stderr.strip() == message


def test_unknown_dataset_argument(script_env):
    result = run_script("start_extract.py", "--dataset", "nope", env=script_env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: unknown dataset 'nope' (configured: life_expectancy_at_60, life_expectancy_at_birth)"
    )


def test_environment_wins_over_env_file(tmp_path, script_env):
    env_file = tmp_path / "custom.env"
    env_file.write_text("GHO_PAGE_SIZE=123\nGHO_API_BASE_URL=http://from-dotenv.invalid/api\nPGSSLMODE=require\n")
    env = dict(script_env, GHO_ENV_FILE=str(env_file), GHO_API_BASE_URL="http://from-env.invalid/api")
    env.pop("GHO_PAGE_SIZE")
    code = (
        "from config import config; " "print(config.GHO_PAGE_SIZE, config.GHO_API_BASE_URL, config.PSQL_SERVER_PARAMS)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert output == "123 http://from-env.invalid/api {'sslmode': 'require'}"


def test_default_api_url():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GHO_", "PG", "DATABASE"))}
    env["GHO_ENV_FILE"] = "/nonexistent.env"
    output = subprocess.run(
        [sys.executable, "-c", "from config import config; print(config.GHO_API_BASE_URL)"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert output == "https://ghoapi.azureedge.net/api"


@pytest.mark.parametrize("script", ["start_extract.py", "start_transform.py", "start_load.py"])
def test_help(script, script_env):
    result = run_script(script, "--help", env=script_env)
    assert result.returncode == 0
    assert "--dataset" in result.stdout and "exit codes" in result.stdout


@pytest.mark.parametrize(
    "script", ["start_scheduler.py", "stop_scheduler.py", "status.py", "db.py", "tests/test_c_psql.py"]
)
def test_every_other_script_has_help_with_its_exit_codes(script, script_env, tmp_path):
    result = run_script(script, "--help", env=script_env)
    assert result.returncode == 0 and result.stdout.startswith("usage: ")
    assert "exit codes" in result.stdout
    assert not (tmp_path / "data").exists(), "--help does nothing else"


def test_every_variable_is_documented():
    import re

    source = (PROJECT_ROOT / "config" / "config.py").read_text()
    variables = set(re.findall(r'_env\("([A-Z_]+)"', source)) | set(re.findall(r'environ\.get\("([A-Z_]+)"', source))
    variables |= set(re.findall(r'"(PG[A-Z]+)"', source))
    assert {"GHO_API_BASE_URL", "DATABASE_URL", "PGSSLMODE", "DATASET_CONFIG_FILE"} <= variables
    example = (PROJECT_ROOT / ".env.example").read_text()
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert [v for v in sorted(variables) if v not in example] == []
    assert [v for v in sorted(variables) if v not in readme] == []
