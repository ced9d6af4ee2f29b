"""The embedded PostgreSQL (the `pgserver` package) under `data/postgres`, made safe to kill at any moment.

pgserver counts the processes using a server in `.handle_pids.json` and stops
it when the last one exits; it serialises start-up with an inter-process lock.
Two things it does not survive, handled here under that same lock:
- a first start killed while initdb runs leaves a half-made cluster that
  every later start fails on (`database "postgres" does not exist`, a missing
  `global/pg_control`, an AssertionError). A marker file beside the data
  directory names the process that began the cluster, from before initdb
  until a start succeeded. Found by a later run while that process is gone,
  it means no start ever succeeded there, so nothing was stored: the
  half-made cluster (and any server left on it) is removed and made again.
- a user killed with SIGKILL never removes its pid, so the server would run
  for ever; pids of processes that are gone are pruned before each start,
  and the server stops when the last live user exits.

pgserver also trusts every local connection, and with a long data path its
socket lands in a world-writable folder: any local user could connect as
superuser. So every start makes sure the server asks for a password: a
generated one, in `postgres.password` beside the data directory (0600, this
user only), set for the `postgres` role while trust still holds, then
pg_hba.conf says scram-sha-256 everywhere and the server reloads it.
"""

import json
import logging
import os
import secrets
import shutil
import signal
import threading
import warnings
from pathlib import Path

import psutil
import psycopg2

from src.storage.disk import write_bytes_atomic

log = logging.getLogger("gho_etl.db")

MARKER_SUFFIX = ".initialising"
PASSWORD_SUFFIX = ".password"
HANDLES = ".handle_pids.json"
# pgserver's inter-process lock does not keep threads of one process apart.
_one_thread_at_a_time = threading.Lock()


def _pgserver():
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (cron, CI); harmless.
        warnings.simplefilter("ignore")
        import pgserver

    return pgserver


def start(data_dir):
    """(a running pgserver handle for `data_dir`, the password connections need); ImportError without pgserver."""
    with _one_thread_at_a_time:
        return _start(data_dir)


def _start(data_dir):
    pgserver = _pgserver()
    import fasteners

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    marker = data_dir.with_name(data_dir.name + MARKER_SUFFIX)
    with fasteners.InterProcessLock(str(pgserver.PostgresServer.lock_path)):
        maker = _read_marker(marker)
        # Our own pid here means an earlier start in this process failed (threads take turns).
        if maker is not None and (maker[0] == os.getpid() or not _alive(*maker)):
            _remove_half_made(data_dir)
            marker.unlink()
            maker = None
        if maker is None and not (data_dir / "PG_VERSION").exists():
            me = psutil.Process()
            marker.write_text(json.dumps([me.pid, me.create_time()]))
        _prune_dead_handles(data_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(data_dir, cleanup_mode="stop")
    marker.unlink(missing_ok=True)  # a start succeeded: the cluster is whole
    with fasteners.InterProcessLock(str(pgserver.PostgresServer.lock_path)):
        password = _require_password(server, data_dir)
    return server, password


def password_file(data_dir) -> Path:
    return data_dir.with_name(data_dir.name + PASSWORD_SUFFIX)


def _require_password(server, data_dir) -> str:
    """The generated password every connection needs (set up on the first start, repaired on any later)."""
    secret_file = password_file(data_dir)
    if not secret_file.exists():
        write_bytes_atomic(secret_file, secrets.token_urlsafe(32).encode())  # mkstemp: 0600
    password = secret_file.read_text().strip()
    hba = data_dir / "pg_hba.conf"
    lines = hba.read_text().splitlines()
    if any(_trusts(line) for line in lines):
        connection = psycopg2.connect(server.get_uri(), connect_timeout=10)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("ALTER ROLE postgres PASSWORD %s", [password])
        finally:
            connection.close()
        _replace_keeping_owner(hba, "".join(_scram(line) + "\n" for line in lines))
    os.kill(server.get_pid(), signal.SIGHUP)  # the server rereads pg_hba.conf (again, if a run was killed here)
    return password


def _trusts(line) -> bool:
    fields = line.split("#", 1)[0].split()
    return bool(fields) and fields[-1] == "trust"


def _scram(line) -> str:
    return line.rsplit("trust", 1)[0] + "scram-sha-256" if _trusts(line) else line


def _replace_keeping_owner(path, text):
    """Write `path` atomically; as root the server runs as another user, who must still own its file."""
    owner = path.stat()
    temp = path.with_name(path.name + ".new")
    temp.write_text(text)
    os.chown(temp, owner.st_uid, owner.st_gid)
    os.chmod(temp, 0o600)
    os.replace(temp, path)


def _remove_half_made(data_dir):
    log.warning("the embedded PostgreSQL in %s was killed during its first start; making it again", data_dir)
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            if process.info["name"] == "postgres" and str(data_dir) in (process.info["cmdline"] or []):
                process.kill()
        except psutil.Error:
            pass
    shutil.rmtree(data_dir, ignore_errors=True)


def _read_marker(marker):
    """(pid, start time) of the process making the cluster, or None when no first start is under way."""
    try:
        pid, started = json.loads(marker.read_text())
        return int(pid), float(started)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        return 0, 0.0  # unreadable: its maker was killed while writing it


def _prune_dead_handles(data_dir):
    path = data_dir / HANDLES
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if _alive(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))


def _alive(pid, started=None) -> bool:
    """Whether process `pid` runs (and, with `started`, is the one that started then, not a reuse of its pid)."""
    try:
        process = psutil.Process(pid)
        if started is not None and abs(process.create_time() - started) > 0.01:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, TypeError, ValueError):
        return False
