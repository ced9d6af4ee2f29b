"""Driving the Airflow environment from our test suite: Airflow runs in .venv-airflow, as a subprocess.

`AirflowHome` is one AIRFLOW_HOME in a temp folder, with a SQLite metadata database (migrated once per
session, then copied) and a dags folder whose one file builds our DAGs with short retry delays.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import PROJECT_ROOT

AIRFLOW_VENV = Path(os.environ.get("GHO_AIRFLOW_VENV") or PROJECT_ROOT / ".venv-airflow")
AIRFLOW_PYTHON = AIRFLOW_VENV / "bin" / "python"
DRIVER = PROJECT_ROOT / "tests" / "airflow_driver.py"
requires_airflow = pytest.mark.skipif(
    not AIRFLOW_PYTHON.is_file(),
    reason=f"no Airflow environment at {AIRFLOW_VENV} (make airflow-env makes it; make test does)",
)
# The tests' DAGs: retries after a second, so a retry is seen within a test.
TEST_DAGS_FILE = """
import sys
from datetime import timedelta
sys.path.insert(0, {root!r})
from src.integrations.airflow_dags import build_dags  # Airflow finds DAGs in files naming airflow and dag
globals().update(build_dags(retries=2, retry_delay=timedelta(seconds=1), retry_exponential_backoff=False))
"""


def airflow_env(home: Path, dags: Path) -> dict:
    """The variables that keep Airflow in `home`: its config, SQLite database, logs, no examples."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }


def migrate(home: Path) -> None:
    """A new metadata database in `home` (Airflow's `db migrate`)."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **airflow_env(home, home / "dags")}
    airflow = AIRFLOW_VENV / "bin" / "airflow"
    done = subprocess.run([str(airflow), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


class AirflowHome:
    """One AIRFLOW_HOME for a test: a copy of the migrated database and the tests' dags folder."""

    def __init__(self, folder: Path, template: Path, dags_file: str = TEST_DAGS_FILE):
        self.home = folder / "airflow"
        self.dags = folder / "dags"
        self.home.mkdir(parents=True)
        self.dags.mkdir(parents=True)
        shutil.copy(template / "airflow.db", self.home / "airflow.db")
        (self.dags / "gho_etl_dags.py").write_text(dags_file.format(root=str(PROJECT_ROOT)))

    def drive(self, env, *args, timeout=600):
        """Run tests/airflow_driver.py with `args` in the Airflow environment; (CompletedProcess, result)."""
        full_env = {**env, **airflow_env(self.home, self.dags)}
        done = subprocess.run(
            [str(AIRFLOW_PYTHON), str(DRIVER), *args],
            cwd=PROJECT_ROOT,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        results = [line[len("RESULT ") :] for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        return done, (json.loads(results[-1]) if results else None)

    def run_dag(self, env, dag_id, *args, expect_result=True):
        done, result = self.drive(env, "run", dag_id, *args)
        if expect_result:
            assert result is not None, f"exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        return done, result


def our_records(stdout: str) -> list:
    """The gho_etl.* JSON records in a task log."""
    records = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"logger": "gho_etl' in line:
            records.append(json.loads(line))
    return records
