"""Local scratch files for a store that is not a local folder: where libraries that need a path write and read.

Each file is named after the process that made it (`.tmp-<pid>-...`), so any
process of this machine may remove the files of processes that are gone, and
never a live one's, whatever phase or lock it holds.
"""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

SCRATCH_PREFIX = ".tmp-"


@contextmanager
def scratch_file(directory: Path):
    """A new empty file in `directory`, removed when the block ends (however it ends)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=directory)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def sweep_dead(directory: Path) -> int:
    """Remove the scratch files of processes that are gone; return how many."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    removed = 0
    for path in directory.glob(SCRATCH_PREFIX + "*"):
        pid = path.name[len(SCRATCH_PREFIX) :].partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
