"""Workers that share only a bucket and the database: each phase a separate process with its own data folder.

Every phase runs as a user would run it (scripts/start_<phase>.py) with its own
GHO_DATA_DIR and log folder, so nothing passes between them but the objects
under GHO_HANDOFF_URL (moto's S3 server on 127.0.0.1) and the target
PostgreSQL. WHOSIS_000001 comes from the real sample through the stand-in
(12,936 rows, three pages of 5,000).
"""

import json
import signal
import subprocess
import sys
import time

import pytest

from src.faultpoints import ENV_VARIABLE
from src.locks import PHASE_LOCK_CLASS
from src.settings import Settings, validate_datasets
from tests.helpers import PROJECT_ROOT, requires_samples, run_script
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
from tests.s3_server import CREDENTIALS, aws_env, bucket_fixture, keys, s3_endpoint_fixture  # noqa: F401
from utils.gho_stub import StubServer

pytestmark = requires_samples

DATASET = "life_expectancy_at_birth"
INDICATOR = "WHOSIS_000001"
ROWS = 12936
PHASES = ("extract", "transform", "load")
RECORD = f"gho/downloads/{DATASET}.json"  # the one object a converged hand-off keeps: the last download's record


@pytest.fixture(scope="module")
def reference(pg_server, tmp_path_factory):
    """The table of a clean run on a local folder, in one process: what every hand-off must converge to."""
    url = create_database(pg_server)
    data_dir = tmp_path_factory.mktemp("reference") / "data"
    try:
        with StubServer() as stub:
            settings = Settings(
                api_base_url=stub.base_url,
                datasets=validate_datasets({DATASET: {"indicator": INDICATOR}}),
                data_dir=data_dir,
                log_dir=data_dir.parent / "logs",
                page_size=5000,
                database_url=url,
            )
            assert all(outcome.ok for outcome in run_pipeline(settings))
        checksum = table_checksum(url, DATASET)
    finally:
        drop_database(pg_server, url)
    assert checksum[0] == ROWS
    return checksum


class Workers:
    """Machines that share the bucket and the database only: `run("extract", on="w1")`."""

    def __init__(self, script_env, tmp_path, s3_endpoint, bucket_name):
        self.tmp_path = tmp_path
        self.env = dict(script_env, **aws_env(s3_endpoint), GHO_HANDOFF_URL=f"s3://{bucket_name}/gho")
        self.env.pop(ENV_VARIABLE, None)

    def env_of(self, worker, **extra):
        folder = self.tmp_path / worker
        return dict(self.env, GHO_DATA_DIR=str(folder / "data"), GHO_LOG_DIR=str(folder / "logs"), **extra)

    def run(self, phase, on, check=0):
        return run_script(f"start_{phase}.py", env=self.env_of(on), check=check)

    def start(self, phase, on, **extra):
        script = str(PROJECT_ROOT / "scripts" / f"start_{phase}.py")
        env = self.env_of(on, **extra)
        return subprocess.Popen(
            [sys.executable, script],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def data_dirs(self):
        return sorted(p / "data" for p in self.tmp_path.iterdir() if (p / "data").is_dir())

    def log_messages(self, worker):
        path = self.tmp_path / worker / "logs" / "gho_etl.jsonl"
        return [json.loads(line)["message"] for line in path.read_text().splitlines()]


@pytest.fixture
def workers(script_env, tmp_path, s3_endpoint, bucket):
    return Workers(script_env, tmp_path / "workers", s3_endpoint, bucket[0])


def converged(workers, bucket, database_url, reference, but=()):
    """The table equals a clean run's, every batch once, and neither the bucket nor any worker (`but` these)
    keeps a batch."""
    name, s3 = bucket
    assert table_checksum(database_url, DATASET) == reference
    assert duplicate_keys(database_url, DATASET) == 0
    assert batches_not_in_ledger(database_url, DATASET, DATASET) == 0
    assert keys(s3, name) == [RECORD]
    for data_dir in workers.data_dirs():
        if data_dir.parent.name not in but:
            assert leftovers(data_dir) == [], data_dir


def test_each_phase_on_its_own_worker_loads_the_sample_once(workers, bucket, database_url, reference):
    name, s3 = bucket
    extracted = workers.run("extract", on="w1")
    assert f"extract {DATASET}: {ROWS} rows (source count {ROWS})" in extracted.stdout
    landed = keys(s3, name, f"gho/landing/{DATASET}/")
    assert len(landed) == 3 + 3 and landed[-1].endswith("/request.json")  # 3 pages, manifest, progress, request
    status = json.loads(run_script("status.py", "--json", env=workers.env_of("w4"), check=0).stdout)
    [entry] = [d for d in status["datasets"] if d["dataset"] == DATASET]
    assert len(entry["waiting"]["landing"]) == 1 and entry["waiting"]["staging"] == []  # seen from any worker
    transformed = workers.run("transform", on="w2")
    assert f"transform {DATASET}: {ROWS} rows, 0 rejects, 1 batch(es)" in transformed.stdout
    assert keys(s3, name, "gho/landing/") == [] and len(keys(s3, name, f"gho/staging/{DATASET}/")) == 1
    loaded = workers.run("load", on="w3")
    assert f"load {DATASET}: {ROWS} rows written of {ROWS} staged" in loaded.stdout
    for output in (extracted, transformed, loaded):  # the lock's own connection says nothing of its own
        assert (output.stdout + output.stderr).count("using database:") == 1
    converged(workers, bucket, database_url, reference)
    for phase, worker in zip(PHASES, ("w3", "w1", "w2")):  # the next run, each phase on another worker
        again = workers.run(phase, on=worker)
    assert f"load {DATASET}: 0 rows written of {ROWS} staged" in again.stdout
    converged(workers, bucket, database_url, reference)
    assert scalar(database_url, "SELECT count(*) FROM etl_batches WHERE dataset = %s", [DATASET]) == 2
    for worker in ("w1", "w2", "w3"):
        logged = "\n".join(workers.log_messages(worker))
        assert CREDENTIALS["aws_secret_access_key"] not in logged


KILL_POINTS = [
    ("extract", "extract.page_done@2"),
    ("transform", "transform.writing_staging"),
    ("transform", "storage.tree_renamed"),  # the landing batch tombstoned, not yet deleted
    ("load", "load.before_commit"),
    ("load", "load.committed"),
]


@pytest.mark.parametrize("phase,point", KILL_POINTS, ids=[point for _, point in KILL_POINTS])
def test_a_worker_killed_mid_phase_and_the_next_run_elsewhere_converges(
    workers, bucket, database_url, reference, phase, point
):
    for before in PHASES[: PHASES.index(phase)]:
        workers.run(before, on="w1")
    killed = workers.start(phase, on="w1", **{ENV_VARIABLE: point})
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL, f"{phase} never reached {point}"
    for each in PHASES:  # the next run, on another worker
        workers.run(each, on="w2")
    converged(workers, bucket, database_url, reference, but=["w1"])
    for each in PHASES:  # the killed worker's next run forgets what it left on its own disk
        workers.run(each, on="w1")
    converged(workers, bucket, database_url, reference)
    assert scalar(database_url, "SELECT count(*) FROM etl_batches WHERE dataset = %s", [DATASET]) <= 3


def _wait_for(condition, what, process, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, f"the first extract ended before {what}"
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.1)


def test_one_extract_runs_and_a_second_on_another_worker_says_it_is_running_elsewhere(
    workers, bucket, database_url, reference, stub
):
    stub.add_fault("stall", seconds=60, path=INDICATOR, after=1)  # the second page hangs
    workers.env.update(GHO_HTTP_TIMEOUT="120")
    first = workers.start("extract", on="w1")
    try:
        _wait_for(lambda: any(r.get("fault") == "stall" for r in stub.requests), "reached the second page", first)
        held = "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.granted"
        held += " AND l.locktype = 'advisory' AND l.classid = %s AND l.objsubid = 2 AND d.datname = current_database()"
        assert scalar(database_url, held, [PHASE_LOCK_CLASS]) == 1  # the first extract's, in the shared database
        second = workers.run("extract", on="w2", check=3)
        assert f"extract of {DATASET} is already running elsewhere" in second.stderr
        assert CREDENTIALS["aws_secret_access_key"] not in second.stdout + second.stderr
    finally:
        first.kill()
        first.communicate(timeout=60)
    stub.clear_faults()
    for phase in PHASES:  # the dead worker's lock went with its session; another one finishes its batch
        workers.run(phase, on="w2")
    assert scalar(database_url, held, [PHASE_LOCK_CLASS]) == 0
    assert any(m.startswith("resuming landing batch") for m in workers.log_messages("w2"))
    converged(workers, bucket, database_url, reference)
