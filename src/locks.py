"""Single-instance locks: flock on a file on this machine, or the target database's advisory lock across machines.

Both are released by the system when the process dies (the kernel closes the
file; the server ends the session), so a killed run never leaves a lock that
blocks the next one, and no pid file is ever trusted to say who holds one.
Phase locks are flocks in the data directory while the hand-off files are
there; with them on object storage (GHO_HANDOFF_URL), workers on other
machines see the same files, so the lock must be one they share too.
"""

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from src.contracts.layout import Layout
from src.errors import AlreadyRunning

# The first key of our two-key advisory locks: the ledger's one-key locks (`ledger.take_lock`) live in another
# key space, so a phase lock never collides with a load's transaction lock.
PHASE_LOCK_CLASS = 0x67686F  # "gho"


def try_lock(path: Path):
    """An open handle holding the exclusive lock on `path`, or None when another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def lock_holders(path: Path):
    """Pids holding an flock on `path`, from /proc/locks; None where the kernel does not list them."""
    try:
        status = os.stat(path)
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    device = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    holders = set()
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 00:2f:5678 0 EOF" (blocked waiters carry a "->" first)
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device:
            holders.add(int(fields[4]))
    return holders


@contextmanager
def exclusive(path: Path, busy_message: str):
    """Hold the lock on `path` for the block; AlreadyRunning(busy_message) when another process has it."""
    handle = try_lock(path)
    if handle is None:
        raise AlreadyRunning(busy_message)
    try:
        yield
    finally:
        handle.close()


def phase_lock(where, dataset: str, phase: str):
    """One phase of one dataset runs in one process at a time.

    `where`: the settings (or, for the local folder alone, its `Layout`). With
    the hand-off on object storage the lock is the target database's, held on
    a connection of its own for the whole phase.
    """
    if getattr(where, "handoff_url", None):
        return database_lock(where, f"{dataset}.{phase}", f"{phase} of {dataset} is already running elsewhere")
    layout = where if isinstance(where, Layout) else Layout(where.data_dir)
    return exclusive(layout.lock_file(dataset, phase), f"{phase} of {dataset} is already running in another process")


def lock_name(name: str) -> str:
    return f"gho-etl:{name}"


@contextmanager
def database_lock(settings, name: str, busy_message: str):
    """Hold a session-level advisory lock of the target database for the block; AlreadyRunning when taken.

    Its connection is the lock: closed at the end of the block, or by the
    server when this process dies, which releases it.
    """
    from src.db import Database

    database = Database(settings, announce=False)  # the phase's own connection says which database
    connection = database.connect()
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", [PHASE_LOCK_CLASS, lock_name(name)])
            if not cursor.fetchone()[0]:
                raise AlreadyRunning(f"{busy_message} (it holds the lock in {database.description()})")
        yield
    finally:
        connection.close()
