"""The scheduler is the process holding the scheduler's lock, never one whose command line looks right.

A stale pid file naming a live, unrelated process whose command line
contains `start_scheduler` once made status say "running", start refuse and
stop send that process SIGTERM.
"""

import json
import os
import subprocess
import sys

from tests.helpers import run_script, write_dataset_config


def test_a_stale_pid_file_naming_a_live_lookalike_is_never_trusted(script_env, tmp_path):
    config = write_dataset_config(tmp_path, {"alpha": {"indicator": "WHOSIS_000001", "schedule": "every day at 02:00"}})
    env = dict(script_env, DATASET_CONFIG_FILE=str(config))
    lookalike = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "start_scheduler.py"])
    try:
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "scheduler.pid").write_text(str(lookalike.pid))
        status = json.loads(run_script("status.py", "--json", env=env, check=0).stdout)
        assert status["scheduler"]["running"] is False
        stopped = run_script("stop_scheduler.py", "--timeout", "2", env=env, check=0)
        assert stopped.stdout.strip() == "scheduler is not running (removed a stale pid file)"
        assert lookalike.poll() is None, "stop_scheduler signalled a process that is not the scheduler"
        (tmp_path / "data" / "scheduler.pid").write_text(str(lookalike.pid))
        started = run_script("start_scheduler.py", env=env, check=0)
        try:
            pid = int((tmp_path / "data" / "scheduler.pid").read_text())
            assert pid != lookalike.pid and f"(pid {pid})" in started.stdout
        finally:
            run_script("stop_scheduler.py", env=env, check=0)
        assert lookalike.poll() is None
    finally:
        lookalike.kill()
        lookalike.wait()


def test_a_scheduler_whose_pid_file_looks_older_than_it_is_still_found_and_stopped(script_env, tmp_path):
    """A clock stepped forward after the start (NTP on a board without a clock) must not orphan the scheduler."""
    config = write_dataset_config(tmp_path, {"alpha": {"indicator": "WHOSIS_000001", "schedule": "every day at 02:00"}})
    env = dict(script_env, DATASET_CONFIG_FILE=str(config))
    run_script("start_scheduler.py", env=env, check=0)
    pid_file = tmp_path / "data" / "scheduler.pid"
    pid = int(pid_file.read_text())
    try:
        written = pid_file.stat().st_mtime
        os.utime(pid_file, (written - 3600, written - 3600))  # as if written an hour before the process began
        status = json.loads(run_script("status.py", "--json", env=env, check=0).stdout)
        assert status["scheduler"]["running"] and status["scheduler"]["pid"] == pid
        stopped = run_script("stop_scheduler.py", env=env, check=0)
        assert stopped.stdout.splitlines()[-1].startswith(f"scheduler (pid {pid}) stopped after ")
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
