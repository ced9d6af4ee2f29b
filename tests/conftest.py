"""Shared fixtures: a real embedded PostgreSQL, a fresh database per test, the GHO stand-in.

Nothing here mocks the database or HTTP: tests talk to PostgreSQL 16 started
by pgserver and to utils/gho_stub.py over a real socket on 127.0.0.1.
"""

import json
import os
import subprocess
import sys
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from src.settings import Settings, validate_datasets  # noqa: E402
from tests.pipeline_checks import create_database, drop_database  # noqa: E402
from utils.gho_stub import StubServer  # noqa: E402

SAMPLES_DIR = PROJECT_ROOT.parent / "shared" / "gho_samples"
requires_samples = pytest.mark.skipif(
    not SAMPLES_DIR.is_dir(), reason=f"real GHO samples not found at {SAMPLES_DIR} (../shared/gho_samples)"
)
# Variables that would point a script at another database or config than the test's.
_FOREIGN_ENV = (
    "DATABASE_URL",
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSSLMODE",
    "DATASET_CONFIG_FILE",
    "GHO_API_BASE_URL",
    "GHO_DATA_DIR",
    "GHO_LOG_DIR",
    "GHO_ENV_FILE",
)


def sample(name):
    return SAMPLES_DIR / name


@pytest.fixture(scope="session")
def pg_server():
    """One embedded PostgreSQL for the whole session, deleted at the end."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        directory = Path(tempfile.mkdtemp(prefix="gho-etl-test-pg-"))
        server = pgserver.get_server(directory / "pgdata", cleanup_mode="delete")
    yield server
    server.cleanup()


@contextmanager
def fresh_database(server, options=""):
    """A new, empty database on `server` for the block (`options` as in create_database), dropped after."""
    url = create_database(server, options)
    try:
        yield url
    finally:
        drop_database(server, url)


@pytest.fixture
def database_url(pg_server):
    """A new, empty database for one test."""
    with fresh_database(pg_server) as url:
        yield url


@pytest.fixture
def db(database_url):
    connection = psycopg2.connect(database_url)
    connection.autocommit = True
    yield connection
    connection.close()


@pytest.fixture
def stub():
    with StubServer() as server:
        yield server


@pytest.fixture
def make_settings(tmp_path, stub, database_url):
    """Settings for in-process calls: temp data dir, the stand-in, the test database, fast retries."""

    def build(datasets=None, **overrides):
        raw = datasets or {"life_expectancy_at_birth": {"indicator": "WHOSIS_000001"}}
        values = dict(
            api_base_url=stub.base_url,
            datasets=validate_datasets(raw),
            data_dir=tmp_path / "data",
            log_dir=tmp_path / "logs",
            page_size=5000,
            http_timeout=5.0,
            max_attempts=4,
            backoff_base=0.01,
            backoff_max=0.05,
            database_url=database_url,
        )
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def script_env(tmp_path, stub, database_url):
    """Environment for running scripts as a user would, isolated in tmp_path."""
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
    env.update(
        GHO_API_BASE_URL=stub.base_url,
        DATABASE_URL=database_url,
        GHO_DATA_DIR=str(tmp_path / "data"),
        GHO_LOG_DIR=str(tmp_path / "logs"),
        GHO_ENV_FILE=str(tmp_path / "no.env"),
        GHO_BACKOFF_BASE="0.01",
        GHO_BACKOFF_MAX="0.05",
        GHO_HTTP_TIMEOUT="5",
        GHO_PAGE_SIZE="5000",
    )
    return env


def run_script(name, *args, env, timeout=120, check=None):
    """Run scripts/<name> (or another project path) from the project root; return the CompletedProcess."""
    path = PROJECT_ROOT / name if "/" in name else PROJECT_ROOT / "scripts" / name
    result = subprocess.run(
        [sys.executable, str(path), *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check is not None and result.returncode != check:
        raise AssertionError(
            f"{name} {' '.join(args)} exited {result.returncode}, expected {check}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def write_dataset_config(tmp_path, config):
    path = tmp_path / "datasets.json"
    path.write_text(json.dumps(config))
    return path
