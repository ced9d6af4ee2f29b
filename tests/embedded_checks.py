"""Helpers for the embedded-database tests: run the real thing in child processes of their own."""

import subprocess
import sys

import psutil

from tests.helpers import PROJECT_ROOT

# Connects to the embedded database of the data directory in argv[1]; prints "ready", then sleeps argv[2] seconds.
CONNECT = f"""
import sys, time
from pathlib import Path
sys.path.insert(0, {str(PROJECT_ROOT)!r})
from src.db import Database
from src.settings import Settings
data = Path(sys.argv[1])
settings = Settings(api_base_url="http://127.0.0.1:9/api", datasets={{}}, data_dir=data, log_dir=data.parent / "logs")
connection = Database(settings).connect()
with connection.cursor() as cursor:
    cursor.execute("SELECT count(*) FROM pg_database WHERE datname = 'postgres'")
    assert cursor.fetchone()[0] == 1
connection.close()
print("ready", flush=True)
time.sleep(float(sys.argv[2]))
"""


def servers(data_dir) -> list:
    """postgres processes serving `data_dir`."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "postgres" and str(data_dir) in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


def start_user(data_dir, linger=0.0):
    return subprocess.Popen(
        [sys.executable, "-c", CONNECT, str(data_dir), str(linger)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def connect_once(data_dir):
    return subprocess.run(
        [sys.executable, "-c", CONNECT, str(data_dir), "0"], capture_output=True, text=True, timeout=120
    )


def embedded_uri(data_dir) -> str:
    script = CONNECT.replace('print("ready", flush=True)', "print(Database(settings)._embedded_uri(), flush=True)")
    result = subprocess.run([sys.executable, "-c", script, str(data_dir), "0"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]
