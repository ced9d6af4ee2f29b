"""The Airflow integration: DAGs built from DATASET_CONFIG and run with dag.test() on a SQLite metadata DB.

Airflow lives in .venv-airflow (make airflow-env), never in our .venv: each test drives it as a
subprocess (tests/airflow_driver.py) against the real embedded PostgreSQL and the stand-in API.
"""

import json
import shutil
import signal
import tempfile
from pathlib import Path

import psycopg2
import pytest

from src.integrations.airflow_schedule import translate
from src.errors import ConfigError
from src.settings import validate_datasets
from tests.airflow_checks import AirflowHome, migrate, our_records, requires_airflow
from tests.helpers import PROJECT_ROOT, requires_samples
from tests.s3_server import CREDENTIALS, aws_env, bucket_fixture, keys, s3_endpoint_fixture  # noqa: F401

WHOSIS_ROWS = 12936
ONE_DATASET = {"life_expectancy_at_birth": {"indicator": "WHOSIS_000001"}}
DAG_ID = "gho_etl_life_expectancy_at_birth"


def _dataset(schedule, name="d"):
    return validate_datasets({name: {"indicator": "X", "schedule": schedule}})[name]


def test_schedules_become_cron_lines_or_intervals():
    assert translate(_dataset("every day at 02:00")).cron == "0 2 * * *"
    weekly = translate(_dataset("every monday at 09:30 Europe/Berlin"))
    assert (weekly.cron, weekly.timezone) == ("30 9 * * mon", "Europe/Berlin")
    assert translate(_dataset("every 6 hours")).every_seconds == 6 * 3600
    assert translate(_dataset("every 90 seconds")).every_seconds == 90


def test_a_time_with_seconds_is_refused_naming_the_dataset():
    with pytest.raises(ConfigError) as refused:
        translate(_dataset("every day at 02:00:30", name="who_water"))
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("DATASET_CONFIG['who_water'].schedule: 'every day at 02:00:30' cannot be")


def test_the_airflow_pins_repeat_ours_and_airflow_stays_out_of_requirements_txt():
    def pins(path):
        lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
        return {
            line.split("==")[0].split("[")[0].lower().replace("_", "-"): line.split("==")[1] for line in lines if line
        }

    ours = pins(PROJECT_ROOT / "requirements.txt")
    airflow = pins(PROJECT_ROOT / "integrations" / "airflow" / "requirements-airflow.txt")
    assert not [name for name in ours if "airflow" in name]
    assert airflow["apache-airflow"].startswith("3.")
    assert {name: (pin, airflow.get(name)) for name, pin in ours.items() if airflow.get(name) != pin} == {}


@pytest.fixture(scope="module")
def airflow_template():
    """One migrated SQLite metadata database, copied by every test (a migration takes seconds)."""
    folder = Path(tempfile.mkdtemp(prefix="gho-etl-airflow-"))
    migrate(folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def airflow(tmp_path, airflow_template):
    return AirflowHome(tmp_path, airflow_template)


@pytest.fixture
def dag_env(script_env, tmp_path):
    """The settings of the DAG run's workers: the stand-in, the test's database, this dataset config."""

    def with_config(config, **extra):
        path = tmp_path / "dataset_config.json"
        path.write_text(json.dumps(config))
        return {**script_env, "DATASET_CONFIG_FILE": str(path), "GHO_MAX_ATTEMPTS": "2", **extra}

    return with_config


@pytest.fixture
def s3_dag_env(dag_env, s3_endpoint, bucket):
    """dag_env with landing and staging on moto's S3 server (the hand-off every worker shares)."""

    def with_config(config, **extra):
        return dag_env(config, **aws_env(s3_endpoint), GHO_HANDOFF_URL=f"s3://{bucket[0]}/gho", **extra)

    return with_config


def _batches_in(bucket, area):
    name, s3 = bucket
    return keys(s3, name, f"gho/{area}/life_expectancy_at_birth/")


def _count(url, query):
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchone()[0]


@requires_airflow
def test_one_dag_per_enabled_dataset_with_its_schedule(airflow, dag_env):
    config = {
        "daily": {"indicator": "WHOSIS_000001", "schedule": "every day at 02:00 Europe/Berlin"},
        "hourly": {"indicator": "WHOSIS_000015", "schedule": "every 6 hours"},
        "off": {"indicator": "WHOSIS_000015", "enabled": False},
    }
    done, result = airflow.drive(dag_env(config), "build")
    assert result is not None, done.stderr[-3000:]
    assert result["import_errors"] == {}
    dags = result["dags"]
    assert sorted(dags) == ["gho_etl_daily", "gho_etl_hourly"]
    assert (dags["gho_etl_daily"]["timetable"], dags["gho_etl_daily"]["summary"]) == (
        "CronTriggerTimetable",
        "0 2 * * *",
    )
    assert dags["gho_etl_daily"]["timezone"] == "Europe/Berlin"
    assert dags["gho_etl_hourly"]["timetable"] == "DeltaTriggerTimetable"
    assert dags["gho_etl_hourly"]["summary"] == "6:00:00"
    assert dags["gho_etl_daily"]["tasks"] == {
        "extract": {"downstream": ["transform"], "retries": 2},
        "transform": {"downstream": ["load"], "retries": 2},
        "load": {"downstream": [], "retries": 2},
    }


@requires_airflow
def test_the_example_dags_file_and_an_untranslatable_schedule(tmp_path, airflow_template, dag_env):
    example = (PROJECT_ROOT / "dags" / "gho_etl.py").read_text().replace("{", "{{").replace("}", "}}")
    home = AirflowHome(tmp_path, airflow_template, dags_file=example)
    env = {**dag_env(ONE_DATASET), "GHO_ETL_HOME": str(PROJECT_ROOT)}
    done, result = home.drive(env, "build")
    assert result is not None, done.stderr[-3000:]
    assert list(result["dags"]) == [DAG_ID]
    assert result["dags"][DAG_ID]["tasks"]["extract"]["retries"] == 4

    env = {
        **dag_env({"water": {"indicator": "X", "schedule": "every day at 02:00:30"}}),
        "GHO_ETL_HOME": str(PROJECT_ROOT),
    }
    done, result = home.drive(env, "build")
    assert result["dags"] == {}
    (error,) = result["import_errors"].values()
    assert "DATASET_CONFIG['water'].schedule: 'every day at 02:00:30' cannot be an Airflow schedule" in error


@requires_airflow
@requires_samples
def test_a_dag_run_on_the_s3_hand_off_loads_whosis_and_a_second_run_writes_nothing(
    airflow, s3_dag_env, bucket, database_url
):
    env = s3_dag_env(ONE_DATASET)
    done, first = airflow.run_dag(env, DAG_ID)
    assert first["state"] == "success", done.stdout[-4000:]
    assert {t: s["state"] for t, s in first["tasks"].items()} == dict.fromkeys(
        ("extract", "transform", "load"), "success"
    )
    assert _count(database_url, "SELECT count(*) FROM life_expectancy_at_birth") == WHOSIS_ROWS
    records = our_records(done.stdout)
    loads = [r for r in records if r.get("phase") == "load" and r["logger"] == "gho_etl.pipeline" and "rows" in r]
    assert [r["rows"] for r in loads] == [WHOSIS_ROWS]
    assert {r["run_id"] for r in records if "run_id" in r} == {loads[0]["run_id"]}
    # The batch went through the bucket and was deleted once loaded; the last download's record stays there.
    assert keys(bucket[1], bucket[0]) == ["gho/downloads/life_expectancy_at_birth.json"]
    assert CREDENTIALS["aws_secret_access_key"] not in done.stdout + done.stderr

    done, second = airflow.run_dag(env, DAG_ID)
    assert second["state"] == "success", done.stdout[-4000:]
    assert _count(database_url, "SELECT count(*) FROM life_expectancy_at_birth") == WHOSIS_ROWS
    written = "SELECT array_agg(rows_written ORDER BY id) FROM etl_runs WHERE phase = 'load' AND trigger = 'airflow'"
    assert _count(database_url, written) == [WHOSIS_ROWS, 0]


@requires_airflow
@requires_samples
def test_a_transient_failure_is_retried_and_a_terminal_one_is_not(airflow, dag_env, stub, database_url):
    # Two 503s use up GHO_MAX_ATTEMPTS=2 of the first try: SourceUnavailable, transient.
    stub.state.faults.add("status", times=2, path="WHOSIS_000001")
    config = {**ONE_DATASET, "missing": {"indicator": "NO_SUCH_INDICATOR"}}
    done, retried = airflow.run_dag(dag_env(config), DAG_ID)
    assert retried["state"] == "success", done.stdout[-4000:]
    assert retried["tasks"]["extract"] == {"state": "success", "try_number": 2}
    assert _count(database_url, "SELECT count(*) FROM life_expectancy_at_birth") == WHOSIS_ROWS

    done, failed = airflow.run_dag(dag_env(config), "gho_etl_missing")
    assert failed["state"] == "failed"
    assert failed["tasks"]["extract"] == {"state": "failed", "try_number": 1}  # retries=2, none used
    assert failed["tasks"]["load"]["state"] == "upstream_failed"
    assert "NO_SUCH_INDICATOR" in done.stdout


@requires_airflow
@requires_samples
def test_a_task_killed_mid_way_and_retried_converges(airflow, s3_dag_env, bucket, database_url):
    at = "2026-12-01T02:00:00+00:00"
    env = s3_dag_env(ONE_DATASET)
    # The load's process is killed inside its transaction, everything written but COMMIT.
    done, killed = airflow.run_dag(
        {**env, "GHO_ETL_CRASH_AT": "load.before_commit"}, DAG_ID, "--at", at, expect_result=False
    )
    assert done.returncode == -signal.SIGKILL and killed is None
    assert _count(database_url, "SELECT to_regclass('etl_batches') IS NULL OR (SELECT count(*) = 0 FROM etl_batches)")
    assert len(_batches_in(bucket, "staging")) == 1  # the transform's batch waits on S3 for the load

    # As Airflow's scheduler does to a task that stopped heartbeating: up_for_retry (tries are left), and
    # the same DAG run goes on with it; the tasks that succeeded are not run again.
    done, retried = airflow.run_dag(env, DAG_ID, "--at", at, "--resume")
    assert retried["before"]["load"]["state"] == "up_for_retry"
    assert retried["state"] == "success", done.stdout[-4000:]
    assert retried["tasks"]["load"]["state"] == "success"
    assert _count(database_url, "SELECT count(*) FROM life_expectancy_at_birth") == WHOSIS_ROWS
    assert _count(database_url, "SELECT count(*) FROM etl_batches WHERE NOT skipped") == 1
    assert keys(bucket[1], bucket[0]) == ["gho/downloads/life_expectancy_at_birth.json"]
    phases = "SELECT array_agg(phase || ' ' || status ORDER BY id) FROM etl_runs"
    assert _count(database_url, phases) == [
        "extract succeeded",
        "transform succeeded",
        "load running",
        "load succeeded",
    ]
