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
"""

import json
import logging
import os
import shutil
import threading
import warnings

import psutil

log = logging.getLogger("gho_etl.db")

MARKER_SUFFIX = ".initialising"
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
    """A running pgserver handle for `data_dir` (ImportError when pgserver is missing)."""
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
    return server


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
