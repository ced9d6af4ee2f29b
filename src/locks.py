"""Single-instance locks on this machine: flock on a file, released by the kernel when the process dies.

A killed run therefore never leaves a lock that blocks the next one, and no
pid file is ever trusted to say who holds one.
"""

import fcntl
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
