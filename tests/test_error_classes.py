"""Errors said for what they are: a PostgreSQL limit is not a lost connection, a read-only disk not a bug.

The database cases change the target table by hand as a user might; the
disk cases put the data folder on a tiny or read-only tmpfs (root only).
"""

import json
import os
import subprocess

import psycopg2
import pytest

from tests.helpers import run_script, write_dataset_config
from utils.gho_samples import generate_rows


def _error_line(result) -> str:
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return line


def test_a_postgresql_limit_is_said_as_such_not_as_a_lost_database(script_env, tmp_path, stub, database_url):
    rows = generate_rows("GEN_E", 20)
    stub.set_rows("GEN_E", rows)
    config = write_dataset_config(tmp_path, {"limits": {"indicator": "GEN_E"}})
    env = dict(script_env, DATASET_CONFIG_FILE=str(config))
    run_script("start_scheduler.py", "--once", env=env, check=0)
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE INDEX limits_comments ON limits (comments)")  # added by hand
    rows[3]["Comments"] = os.urandom(4000).hex()  # 8000 characters that do not compress
    stub.set_rows("GEN_E", rows)
    result = run_script("start_scheduler.py", "--once", env=env)
    assert result.returncode == 1
    line = _error_line(result)
    assert "a PostgreSQL limit was exceeded while loading limits" in line and "[SQLSTATE 54000]" in line
    assert "lost the database" not in line
    records = [json.loads(text) for text in (tmp_path / "logs" / "gho_etl.jsonl").read_text().splitlines()]
    failed = [r for r in records if "FAILED" in r["message"]]
    assert failed and {r["level"] for r in failed} == {"ERROR"}, "a failed phase is an ERROR in the log"


@pytest.fixture
def tmpfs(tmp_path):
    """A mount point; the test mounts a tmpfs on it with the options it needs."""
    point = tmp_path / "mnt"
    point.mkdir()
    yield point
    subprocess.run(["umount", str(point)], capture_output=True)


def _mount(point, options):
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")


@pytest.mark.parametrize(
    "options, said",
    [("size=1m,ro", "Read-only file system"), ("size=64k", "No space left on device")],
    ids=["read-only", "full"],
)
def test_a_data_folder_that_cannot_be_written_is_said_as_such(script_env, tmpfs, stub, options, said):
    stub.set_rows("GEN_D", generate_rows("GEN_D", 2000))
    _mount(tmpfs, "size=1m")
    (tmpfs / "data").mkdir()
    subprocess.run(["mount", "-o", "remount," + options, str(tmpfs)], check=True)
    config = write_dataset_config(tmpfs.parent, {"disk": {"indicator": "GEN_D"}})
    env = dict(script_env, DATASET_CONFIG_FILE=str(config), GHO_DATA_DIR=str(tmpfs / "data"), GHO_PAGE_SIZE="500")
    result = run_script("start_extract.py", env=env)
    assert result.returncode == 1
    line = _error_line(result)
    assert "cannot write" in line and said in line, line
    assert "unexpected" not in line
