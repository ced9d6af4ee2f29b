"""A dataset of two real indicators (WHOSIS_000001 and WHOSIS_000015) through the scripts, and killed in the second.

The stand-in serves the real samples in ../shared/gho_samples (12,936 rows each); every test here
is skipped, saying so, when they are absent.
"""

import json
import os
import re
import signal
import subprocess
import sys

import psycopg2
import pytest

from src.faultpoints import ENV_VARIABLE
from tests.api_checks import api_requests
from tests.helpers import FOREIGN_ENV, PROJECT_ROOT, requires_samples, run_script, write_dataset_config
from tests.pipeline_checks import (
    batches_not_in_ledger,
    create_database,
    drop_database,
    duplicate_keys,
    leftovers,
    scalar,
    table_checksum,
)
from utils.gho_stub import StubServer

pytestmark = requires_samples

CODES = ["WHOSIS_000001", "WHOSIS_000015"]
DATASET = "life_expectancy"
CONFIG = {DATASET: {"indicators": CODES}}
ROWS = 25_872  # 12,936 of each


def _env(script_env, tmp_path, url=None):
    env = dict(script_env, DATASET_CONFIG_FILE=str(write_dataset_config(tmp_path, CONFIG)))
    return env if url is None else dict(env, DATABASE_URL=url, GHO_DATA_DIR=str(tmp_path / "data"))


def test_two_indicators_load_into_one_table_and_a_rerun_writes_nothing(script_env, stub, database_url, tmp_path):
    env = _env(script_env, tmp_path)
    result = run_script("start_scheduler.py", "--once", env=env, check=0)
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(
        rf"extract {DATASET}: {ROWS} rows \(source count {ROWS}\), 0 rejects, 1 batch\(es\), .*", lines[0]
    )
    assert re.fullmatch(rf"load {DATASET}: {ROWS} rows written of {ROWS} staged, .*", lines[2])
    counted = f"SELECT indicator_code, count(*) FROM {DATASET} GROUP BY 1 ORDER BY 1"
    with_counts = [(code, 12_936) for code in CODES]
    assert _rows(database_url, counted) == with_counts
    assert duplicate_keys(database_url, DATASET) == 0

    result = run_script("start_scheduler.py", "--once", env=env, check=0)
    # The same pages as the batch loaded: neither transformed nor loaded (tests/test_change_probe.py)
    assert (
        result.stdout.strip()
        .splitlines()[2]
        .startswith(f"load {DATASET}: unchanged (same pages), nothing to do, {ROWS} rows as before")
    )
    assert _rows(database_url, counted) == with_counts
    assert leftovers(tmp_path / "data") == []


def _rows(url, query):
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(query)
        found = cursor.fetchall()
    connection.close()
    return found


@pytest.fixture(scope="module")
def clean_checksum(pg_server, tmp_path_factory):
    """The table a clean, uninterrupted run leaves (its own stand-in, database and data folder)."""
    tmp_path = tmp_path_factory.mktemp("clean")
    url = create_database(pg_server)
    try:
        with StubServer() as server:
            env = _env(_script_env(server, tmp_path), tmp_path, url)
            run_script("start_scheduler.py", "--once", env=env, check=0)
        return table_checksum(url, DATASET)
    finally:
        drop_database(pg_server, url)


def _script_env(server, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV and k != ENV_VARIABLE}
    env.update(
        GHO_API_BASE_URL=server.base_url,
        GHO_LOG_DIR=str(tmp_path / "logs"),
        GHO_ENV_FILE=os.devnull,
        GHO_BACKOFF_BASE="0.01",
        GHO_BACKOFF_MAX="0.05",
        GHO_HTTP_TIMEOUT="5",
        GHO_PAGE_SIZE="5000",
    )
    return env


# Pages of 5,000 rows: WHOSIS_000001 is pages 1-3 and its final count, WHOSIS_000015 pages 4-6 and its count.
SECOND_INDICATOR_POINTS = ["extract.page_received@5", "extract.page_written@5", "extract.page_done@6"]


@pytest.mark.parametrize("point", SECOND_INDICATOR_POINTS)
def test_a_kill_in_the_second_indicator_resumes_there_to_the_same_table(
    script_env, stub, database_url, tmp_path, clean_checksum, point
):
    env = _env(script_env, tmp_path)
    process = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "start_scheduler.py"), "--once", "--quiet"],
        cwd=PROJECT_ROOT,
        env=dict(env, **{ENV_VARIABLE: point}),
        capture_output=True,
        timeout=120,
    )
    assert process.returncode == -signal.SIGKILL, f"the run never reached {point}"
    [batch] = (tmp_path / "data" / "landing" / DATASET).iterdir()
    progress = json.loads((batch / "progress.json").read_text())
    assert progress["indicators"][0]["step"] is None and progress["indicators"][1]["step"] is not None

    stub.clear_requests()
    run_script("start_scheduler.py", "--once", "--quiet", env=env, check=0)
    asked = {request["path"].rsplit("/", 1)[-1] for request in api_requests(stub)}
    assert asked == {"WHOSIS_000015"}, "the first indicator, proven complete before the kill, is not asked again"
    assert table_checksum(database_url, DATASET) == clean_checksum
    assert clean_checksum[0] == ROWS
    assert duplicate_keys(database_url, DATASET) == 0
    assert batches_not_in_ledger(database_url, DATASET, DATASET) == 0
    assert scalar(database_url, "SELECT count(*) FROM etl_batches WHERE dataset = %s", [DATASET]) == 1
    assert leftovers(tmp_path / "data") == []
