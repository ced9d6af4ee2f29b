"""Single-instance locks on this machine: flock on a file, released by the kernel when the process dies.

A killed run therefore never leaves a lock that blocks the next one, and no
pid file is ever trusted to say who holds one.
"""

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from src.errors import AlreadyRunning


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


def phase_lock(layout, dataset: str, phase: str):
    """One phase of one dataset runs in one process at a time."""
    return exclusive(layout.lock_file(dataset, phase), f"{phase} of {dataset} is already running in another process")
