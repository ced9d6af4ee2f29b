"""Keep the embedded server up, let it stop, and say how it is: what `scripts/db.py` does with it.

`keep_up` leaves a `postgres.keep` file beside the cluster, so the server is
not stopped when the last process using it exits (`server._cleanup`); `let_stop`
removes it and stops the server at once when no live process uses it, or
leaves it to stop when the last one exits.
"""

from dataclasses import dataclass, field
from urllib.parse import quote

from src.errors import DatabaseUnavailable

from src.embedded_db import password, repair, start
from src.embedded_db.server import (  # noqa: F401  (psql_binary: for scripts/db.py)
    KEEP_SUFFIX,
    EmbeddedServer,
    beside,
    kept_up,
    psql_binary,
    running_postmaster,
    start_lock,
)


@dataclass
class EmbeddedState:
    """How the embedded server of one cluster is, read without starting it."""

    cluster: object
    exists: bool
    running: bool = False
    pid: int = None
    socket_dir: str = None
    version: str = None
    kept_up: bool = False
    users: list = field(default_factory=list)


def state(cluster) -> EmbeddedState:
    version_file = cluster / "PG_VERSION"
    if not version_file.exists():
        return EmbeddedState(cluster, exists=False, kept_up=kept_up(cluster))
    info = running_postmaster(cluster)
    return EmbeddedState(
        cluster,
        exists=True,
        running=info is not None,
        pid=info.pid if info else None,
        socket_dir=str(info.socket_dir) if info else None,
        version=version_file.read_text().strip(),
        kept_up=kept_up(cluster),
        users=repair.live_handles(cluster),
    )


def uri(cluster, socket_dir) -> str:
    """A libpq URI holding no secret: the password comes from the 0600 passfile it names."""
    passfile = password.pgpass_file(cluster)
    query = f"host={quote(str(socket_dir), safe='')}&passfile={quote(str(passfile), safe='')}"
    return f"postgresql://postgres@/postgres?{query}"


def keep_up(cluster) -> EmbeddedState:
    """Start the server (making the cluster on first use) and keep it up after this process exits."""
    keep = beside(cluster, KEEP_SUFFIX)
    cluster.parent.mkdir(parents=True, exist_ok=True)
    keep.touch()
    try:
        start(cluster)
    except BaseException:
        keep.unlink(missing_ok=True)
        raise
    return state(cluster)


def let_stop(cluster):
    """None when no server ran; [] when it stopped now; else the pids of the live processes using it (it stops
    when they exit)."""
    beside(cluster, KEEP_SUFFIX).unlink(missing_ok=True)
    lock = start_lock(cluster)
    with lock:  # a start or another stop in progress finishes first
        if running_postmaster(cluster) is None:
            return None
        repair.prune_dead_handles(cluster)
        users = repair.live_handles(cluster)
        if not users:
            try:
                EmbeddedServer(cluster, lock, password="").stop_now()
            except RuntimeError as exc:
                raise DatabaseUnavailable(f"could not stop the embedded PostgreSQL in {cluster}: {exc}") from None
    return users
