"""Atomic writes, crash-safe deletes and sweeping on a local disk.

A reader must never see half a file and a killed process must never leave
anything that blocks the next run, so every file is written to a temporary
name in the same directory, flushed to disk and renamed into place. Leftover
temporary files are recognisable by their prefix and swept by the next run.
"""

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from src.faultpoints import crash_point

TEMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path):
    """Yield a temporary path to write with any library; it is renamed to `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    os.close(fd)
    try:
        yield Path(temp_name)
        with open(temp_name, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
        fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        raise


@contextmanager
def atomic_output(path: Path, mode="wb"):
    """Yield a file object whose content appears at `path` only if the block succeeds."""
    with atomic_path(path) as temp:
        with open(temp, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_output(path, "wb") as handle:
        handle.write(data)


def json_bytes(obj) -> bytes:
    """How every JSON file of ours is written: sorted keys, one space of indent, UTF-8."""
    return json.dumps(obj, indent=1, sort_keys=True).encode("utf-8")


def write_json_atomic(path: Path, obj) -> None:
    write_bytes_atomic(path, json_bytes(obj))


def sweep_temp_files(directory: Path) -> int:
    """Remove temporary files a killed process left behind (call only under the phase lock)."""
    removed = 0
    if not directory.exists():
        return 0
    for path in sorted(directory.rglob(TEMP_PREFIX + "*"), reverse=True):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed += 1
    return removed


def remove_tree(path: Path) -> None:
    """Delete a directory so that a crash half-way leaves no half-deleted batch behind.

    The directory is first renamed out of the way (atomic), then removed.
    """
    path = Path(path)
    if not path.exists():
        return
    doomed = path.with_name(f"{TEMP_PREFIX}deleting-{path.name}")
    if doomed.exists():
        shutil.rmtree(doomed)
    os.replace(path, doomed)
    fsync_dir(path.parent)
    crash_point("storage.tree_renamed")
    shutil.rmtree(doomed, ignore_errors=True)
