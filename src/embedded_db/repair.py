"""What a kill can leave behind in the embedded cluster, found and undone before each start.

- A marker beside the cluster names the process that began it (pid and start
  time), from before initdb until a start succeeded. Found with that process
  gone (or naming this process: an earlier start here failed), no start ever
  succeeded there and nothing was stored: the half-made cluster and any server
  left on it are removed, and the start makes it again.
- The package's `.handle_pids.json` lists the processes using the server;
  pids of processes that are gone are pruned, so the server stops when the
  last live user exits.
Both run under the start-up lock.
"""

import json
import logging
import os
import shutil

import psutil

log = logging.getLogger("gho_etl.db")

MARKER_SUFFIX = ".initialising"
HANDLES = ".handle_pids.json"


def marker_file(cluster):
    return cluster.with_name(cluster.name + MARKER_SUFFIX)


def before_start(cluster) -> None:
    marker = marker_file(cluster)
    maker = _read_marker(marker)
    if maker is not None and (maker[0] == os.getpid() or not _alive(*maker)):
        _remove_half_made(cluster)
        marker.unlink()
        maker = None
    if maker is None and not (cluster / "PG_VERSION").exists():
        me = psutil.Process()
        marker.write_text(json.dumps([me.pid, me.create_time()]))
    prune_dead_handles(cluster)


def after_start(cluster) -> None:
    """A start succeeded: the cluster is whole."""
    marker_file(cluster).unlink(missing_ok=True)


def live_handles(cluster) -> list:
    """Pids of the live processes using the server of `cluster`."""
    try:
        pids = json.loads((cluster / HANDLES).read_text())
    except (OSError, ValueError):
        return []
    return [pid for pid in pids if isinstance(pid, int) and _alive(pid)]


def prune_dead_handles(cluster) -> None:
    path = cluster / HANDLES
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    alive = live_handles(cluster)
    if alive != pids:
        path.write_text(json.dumps(alive))


def _remove_half_made(cluster):
    log.warning("the first start of the embedded PostgreSQL in %s did not finish; making it again", cluster)
    for process in _processes_of(cluster):
        try:
            process.kill()
        except psutil.Error:
            pass
    shutil.rmtree(cluster, ignore_errors=True)


def _processes_of(cluster) -> list:
    """Servers and initdb runs on `cluster`, with their children (initdb's bootstrap backends name no folder)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            if process.info["name"] in ("postgres", "initdb") and str(cluster) in (process.info["cmdline"] or []):
                found += [process, *process.children(recursive=True)]
        except psutil.Error:
            pass
    return found


def _read_marker(marker):
    """(pid, start time) of the process making the cluster, or None when no first start is under way."""
    try:
        pid, started = json.loads(marker.read_text())
        return int(pid), float(started)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        return 0, 0.0  # unreadable: its maker was killed while writing it


def _alive(pid, started=None) -> bool:
    """Whether process `pid` runs (and, with `started`, is the one that started then, not a reuse of its pid)."""
    try:
        process = psutil.Process(pid)
        if started is not None and abs(process.create_time() - started) > 0.01:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, TypeError, ValueError):
        return False
