"""Crash trials: SIGKILL the real pipeline process at many points, then prove a plain re-run converges.

Every trial runs `start_scheduler.py --once` (all three phases) in a fresh data
directory and database, kills it (at an exact crash point via
GHO_ETL_CRASH_AT, mid-download, or after a random delay), re-runs it without
the fault and checks the result against a clean run's: same table checksum, no
duplicate natural key, no batch outside the ledger, no leftover file.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from src.faultpoints import ENV_VARIABLE, POINTS
from src.settings import Settings, validate_datasets
from tests.helpers import PROJECT_ROOT, FOREIGN_ENV, run_script
from tests.pipeline_checks import (
    batches_not_in_ledger,
    create_database,
    drop_database,
    duplicate_keys,
    leftovers,
    run_pipeline,
    scalar,
    table_checksum,
)
from utils.gho_samples import generate_rows
from utils.gho_stub import StubServer

INDICATOR = "WHOSIS_000001"
DATASET = "crash_test"
ROWS = 2400
PAGE_SIZE = 500  # five pages, the last one short
CONFIG = {DATASET: {"indicator": INDICATOR, "mode": "merge"}}


def _changed_rows():
    """The upstream data a day later: every 7th value revised, 100 new facts."""
    rows = [dict(row) for row in generate_rows(INDICATOR, ROWS + 100)]
    for row in rows[::7]:
        row["NumericValue"] = round(row["NumericValue"] + 1.5, 5)
        row["Value"] = f"{row['NumericValue']:.1f} [{row['Low']:.1f}-{row['High']:.1f}]"
    return rows


@pytest.fixture(scope="module")
def stubs():
    """One stand-in per version of the upstream data, so trials never change what another serves."""
    with StubServer(use_samples=False) as first, StubServer(use_samples=False) as update:
        first.set_rows(INDICATOR, generate_rows(INDICATOR, ROWS))
        update.set_rows(INDICATOR, _changed_rows())
        yield {"first": first, "update": update}


def _settings(stub, data_dir, url):
    return Settings(
        api_base_url=stub.base_url,
        datasets=validate_datasets(CONFIG),
        data_dir=data_dir,
        log_dir=data_dir.parent / "logs",
        page_size=PAGE_SIZE,
        http_timeout=5.0,
        max_attempts=4,
        backoff_base=0.01,
        backoff_max=0.05,
        database_url=url,
    )


@pytest.fixture(scope="module")
def reference(pg_server, stubs, tmp_path_factory):
    """Checksums of clean, uninterrupted runs: a first load, and a load of the changed data on top."""
    url = create_database(pg_server)
    data_dir = tmp_path_factory.mktemp("reference") / "data"
    try:
        assert all(o.ok for o in run_pipeline(_settings(stubs["first"], data_dir, url)))
        first = table_checksum(url, DATASET)
        assert all(o.ok for o in run_pipeline(_settings(stubs["update"], data_dir, url)))
        update = table_checksum(url, DATASET)
    finally:
        drop_database(pg_server, url)
    assert first[0] == ROWS and update[0] == ROWS + 100 and first[1] != update[1]
    return {"first": first, "update": update}


class Trial:
    """One data directory and database; a run to crash and a plain re-run."""

    def __init__(self, pg_server, stubs, tmp_path, scenario):
        self.pg_server, self.scenario, self.tmp_path = pg_server, scenario, tmp_path
        self.url = create_database(pg_server)
        self.data_dir = tmp_path / "data"
        if scenario == "update":
            # The table already holds yesterday's data, loaded cleanly.
            assert all(o.ok for o in run_pipeline(_settings(stubs["first"], self.data_dir, self.url)))
        self.stub = stubs[scenario]
        config_file = tmp_path / "datasets.json"
        config_file.write_text(json.dumps(CONFIG))
        self.env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV and k != ENV_VARIABLE}
        self.env.update(
            GHO_API_BASE_URL=self.stub.base_url,
            DATABASE_URL=self.url,
            DATASET_CONFIG_FILE=str(config_file),
            GHO_DATA_DIR=str(self.data_dir),
            GHO_LOG_DIR=str(tmp_path / "logs"),
            GHO_ENV_FILE=os.devnull,
            GHO_PAGE_SIZE=str(PAGE_SIZE),
            GHO_BACKOFF_BASE="0.01",
            GHO_BACKOFF_MAX="0.05",
            GHO_HTTP_TIMEOUT="5",
        )

    def start(self, **extra_env):
        return subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "scripts" / "start_scheduler.py"), "--once", "--quiet"],
            cwd=PROJECT_ROOT,
            env=dict(self.env, **extra_env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def rerun_and_check(self, reference):
        run_script("start_scheduler.py", "--once", "--quiet", env=self.env, check=0)
        assert table_checksum(self.url, DATASET) == reference[self.scenario]
        assert duplicate_keys(self.url, DATASET) == 0
        assert batches_not_in_ledger(self.url, DATASET, DATASET) == 0
        # A crash that left a complete landing or staging batch behind is
        # finished by the re-run next to the batch it extracts afresh: one more
        # ledger entry, never the same batch twice (the ledger's primary key).
        expected = 1 if self.scenario == "first" else 2
        batches = scalar(self.url, "SELECT count(*) FROM etl_batches WHERE dataset = %s", [DATASET])
        assert expected <= batches <= expected + 1
        assert leftovers(self.data_dir) == []

    def close(self):
        drop_database(self.pg_server, self.url)


@pytest.fixture
def trial(pg_server, stubs, tmp_path):
    opened = []

    def open_trial(scenario):
        opened.append(Trial(pg_server, stubs, tmp_path, scenario))
        return opened[-1]

    yield open_trial
    for each in opened:
        each.close()


EXACT_POINTS = [
    ("first", "extract.page_received@3"),
    ("first", "extract.page_written@2"),
    ("first", "extract.page_done@4"),
    ("first", "extract.before_manifest"),
    ("first", "transform.writing_staging"),
    ("first", "transform.staging_written"),
    ("first", "storage.tree_renamed"),
    ("first", "load.copied"),
    ("first", "load.applied"),
    ("first", "load.before_commit"),
    ("first", "load.committed"),
    ("update", "extract.page_done@2"),
    ("update", "transform.staging_written"),
    ("update", "load.copied"),
    ("update", "load.applied"),
    ("update", "load.before_commit"),
    ("update", "load.committed"),
]


def test_every_crash_point_is_exercised():
    assert {spec.split("@")[0] for _, spec in EXACT_POINTS} == set(POINTS)


@pytest.mark.parametrize("scenario,point", EXACT_POINTS, ids=[f"{s}-{p}" for s, p in EXACT_POINTS])
def test_kill_at_exact_point_then_rerun_converges(trial, reference, scenario, point):
    run = trial(scenario)
    process = run.start(**{ENV_VARIABLE: point})
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL, f"the run never reached {point}"
    run.rerun_and_check(reference)


def test_kill_during_a_page_download_then_rerun_converges(trial, reference):
    run = trial("update")
    run.stub.add_fault("stall", seconds=30, path=INDICATOR, after=1)
    process = run.start()
    try:
        deadline = time.monotonic() + 60
        while not any(r.get("fault") == "stall" for r in run.stub.requests):
            assert time.monotonic() < deadline and process.poll() is None, "the download never started"
            time.sleep(0.02)
        time.sleep(0.2)  # half the page has arrived, the rest is pending
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        run.stub.clear_faults()
    assert process.returncode == -signal.SIGKILL
    run.rerun_and_check(reference)


RANDOM_TRIALS = 8


@pytest.mark.parametrize("number", range(RANDOM_TRIALS))
def test_kill_after_random_delay_then_rerun_converges(trial, reference, number, clean_run_seconds):
    seed = int(os.environ.get("GHO_CRASH_SEED", "20261126")) + number
    delay = random.Random(seed).uniform(0.2, clean_run_seconds)
    run = trial("update")
    process = run.start()
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    print(f"trial {number}: seed {seed}, killed after {delay:.2f}s (exit {process.returncode})")
    run.rerun_and_check(reference)


@pytest.fixture(scope="module")
def clean_run_seconds(pg_server, stubs, tmp_path_factory, reference):
    """How long an uninterrupted subprocess run takes, so random kills land anywhere inside one."""
    tmp_path = tmp_path_factory.mktemp("timing")
    run = Trial(pg_server, stubs, tmp_path, "update")
    try:
        started = time.monotonic()
        process = run.start()
        process.communicate(timeout=120)
        assert process.returncode == 0
        return time.monotonic() - started
    finally:
        run.close()
