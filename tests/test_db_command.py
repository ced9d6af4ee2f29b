"""`scripts/db.py`: the database in use one command away, as a user would run it; no password ever shown.

The embedded cases run on a data folder of their own (`enterable_dir`); the
configured ones on the test database.
"""

import os
import signal
import stat
import subprocess
import sys
import time

import pandas
import psycopg2
import pytest
import sqlalchemy

from tests.embedded_checks import servers
from tests.helpers import PROJECT_ROOT, requires_samples, run_script, write_dataset_config
from utils.gho_samples import generate_rows

SECRET = "Zk4s3cretQ"


@pytest.fixture
def embedded_env(script_env, enterable_dir):
    env = dict(script_env, GHO_DATA_DIR=str(enterable_dir / "data"), GHO_LOG_DIR=str(enterable_dir / "logs"))
    env.pop("DATABASE_URL")
    yield env
    for process in servers(enterable_dir):
        process.kill()


def _db(env, *args, check=None):
    return run_script("db.py", *args, env=env, check=check)


def test_start_uri_psql_stop_on_the_embedded_database(embedded_env, enterable_dir):
    assert _db(embedded_env, "status").returncode == 1  # not made yet
    assert "not running" in _db(embedded_env, "uri", check=1).stderr
    started = _db(embedded_env, "start", check=0)
    assert started.stdout.startswith("embedded PostgreSQL 18 is up (pid ")
    assert "kept up by db.py start" in _db(embedded_env, "status", check=0).stdout
    uri = _db(embedded_env, "uri", check=0).stdout.strip()
    password = (enterable_dir / "data" / "postgres.password").read_text().strip()
    assert password not in uri and "passfile=" in uri
    passfile = enterable_dir / "data" / "postgres.pgpass"
    assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
    connection = psycopg2.connect(uri)  # the URI alone is enough: libpq reads the passfile
    connection.close()
    assert pandas.read_sql("SELECT 7 AS seven", sqlalchemy.create_engine(uri))["seven"].tolist() == [7]
    shown = _db(embedded_env, "psql", "-At", "-c", "SELECT current_user", check=0)
    assert shown.stdout.strip() == "postgres"
    assert servers(enterable_dir), "psql's end must not stop a server kept up by db.py start"
    assert _db(embedded_env, "stop", check=0).stdout.strip() == "the embedded database is stopped"
    assert servers(enterable_dir) == []
    assert _db(embedded_env, "status").returncode == 1


def test_stop_while_a_job_uses_it_waits_for_the_job(embedded_env, enterable_dir):
    _db(embedded_env, "start", check=0)
    user = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(enterable_dir / "data")], stdout=subprocess.PIPE, text=True
    )
    assert user.stdout.readline().strip() == "ready"
    stopped = _db(embedded_env, "stop", check=0)
    assert f"stops when the 1 process(es) using it end (pids {user.pid})" in stopped.stdout
    assert servers(enterable_dir)
    user.wait(timeout=60)
    _wait(lambda: not servers(enterable_dir), "the server to stop after its last user")


# Uses the embedded database of argv[1] for two seconds, as a job would.
_HOLD = f"""
import sys, time
sys.path.insert(0, {str(PROJECT_ROOT)!r})
from pathlib import Path
from src.db import Database
from src.settings import Settings
data = Path(sys.argv[1])
settings = Settings(api_base_url="http://127.0.0.1:9/api", datasets={{}}, data_dir=data, log_dir=data.parent / "logs")
Database(settings).connect().close()
print("ready", flush=True)
time.sleep(2)
"""


def _wait(condition, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_two_stops_at_once_both_end_cleanly(embedded_env, enterable_dir):
    _db(embedded_env, "start", check=0)
    stops = [
        subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "scripts" / "db.py"), "stop"],
            env=embedded_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [stop.communicate(timeout=60) for stop in stops]
    assert [stop.returncode for stop in stops] == [0, 0], outputs
    assert sorted(out.strip() for out, _ in outputs) == [
        "the embedded database is not running",
        "the embedded database is stopped",
    ]
    assert all(err == "" for _, err in outputs), outputs
    assert servers(enterable_dir) == []


def test_ctrl_c_in_psql_cancels_the_query_and_psql_ends_itself(script_env, database_url):
    shell = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "db.py"), "psql", "-c", "SELECT pg_sleep(30)"],
        env=script_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    connection = psycopg2.connect(database_url)
    connection.autocommit = True
    try:
        running = "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'"
        with connection.cursor() as cursor:
            _wait(lambda: cursor.execute(running) or cursor.fetchone()[0] == 1, "psql's query to run")
    finally:
        connection.close()
    os.killpg(shell.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = shell.communicate(timeout=20)
    assert "canceling statement due to user request" in err
    assert shell.returncode == 1  # psql's own code for a failed -c; not 130, psql was not killed


def test_the_embedded_database_stays_up_while_the_scheduler_runs(embedded_env, enterable_dir, stub):
    stub.set_rows("GEN_A", generate_rows("GEN_A", 50))
    config = write_dataset_config(enterable_dir, {"alpha": {"indicator": "GEN_A", "schedule": "every 1 hours"}})
    env = dict(embedded_env, DATASET_CONFIG_FILE=str(config))
    run_script("start_scheduler.py", env=env, check=0)
    try:
        _wait(lambda: _db(env, "status").returncode == 0, "the scheduler to start the embedded database")
        assert "stops when the last process using it ends" in _db(env, "status").stdout
    finally:
        run_script("stop_scheduler.py", env=env, check=0)
    _wait(lambda: not servers(enterable_dir), "the server to stop with the scheduler")


def test_a_configured_database_uri_and_psql_show_no_password(script_env, database_url):
    env = dict(script_env, DATABASE_URL=f"postgresql://etl:{SECRET}@127.0.0.1:9/gho?sslmode=disable")
    shown = _db(env, "uri", check=0)
    assert shown.stdout.strip() == "postgresql://etl@127.0.0.1:9/gho?sslmode=disable"
    assert SECRET not in shown.stdout + shown.stderr
    refused = _db(env, "status")
    assert refused.returncode == 1 and SECRET not in refused.stdout + refused.stderr
    assert "cannot connect to postgresql://etl@127.0.0.1:9/gho" in refused.stderr
    answered = _db(script_env, "psql", "--", "-At", "-c", "SELECT 40 + 2", check=0)
    assert answered.stdout.strip() == "42"
    assert _db(script_env, "status", check=0).stdout.endswith(": up (PostgreSQL 18.4)\n")
    for verb in ("start", "stop"):
        assert "a database is configured" in _db(script_env, verb, check=2).stderr


def test_every_verb_has_help(script_env):
    shown = _db(script_env, "--help", check=0).stdout
    for verb in ("uri", "psql", "start", "stop", "status"):
        assert verb in shown


@requires_samples
def test_the_readme_queries_answer_on_the_real_sample(script_env, database_url):
    run_script("start_scheduler.py", "--once", env=script_env, check=0)
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("## Query the data", 1)[1].split("\n## ", 1)[0]
    queries = [q.strip() for block in section.split("```sql")[1:] for q in block.split("```")[0].split(";")]
    queries = [q for q in queries if q and not all(line.startswith("--") for line in q.splitlines())]
    assert len(queries) == 3
    connection = psycopg2.connect(database_url)
    try:
        with connection.cursor() as cursor:
            for query in queries:
                cursor.execute(query)
                assert cursor.fetchall(), query
    finally:
        connection.close()
