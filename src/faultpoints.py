"""Named crash points, so tests can kill the pipeline at an exact moment.

Setting `GHO_ETL_CRASH_AT=<point>[@<n>]` makes the process SIGKILL itself the
n-th time (default: the first) it reaches `crash_point("<point>")`. Nothing
is flushed or cleaned up, exactly as if the machine lost power or the OOM
killer struck. The variable is for the fault-injection tests only; when it is
unset (always, in production) a crash point costs one dictionary lookup.
"""

import os
import signal
import threading
from collections import Counter

ENV_VARIABLE = "GHO_ETL_CRASH_AT"

POINTS = (
    "extract.page_received",  # a page is in memory, not yet on disk
    "extract.page_written",  # the page file is in place, progress.json does not list it yet
    "extract.page_done",  # between pages: page and progress written
    "extract.before_manifest",  # every page fetched, batch not yet marked complete
    "transform.writing_staging",  # part of the staging file written under its temporary name
    "transform.staging_written",  # staging renamed into place, landing batch not yet deleted
    "load.copied",  # inside the transaction: rows copied (into the temp table, or an empty target)
    "load.applied",  # inside the transaction: target changed, ledger not yet written
    "load.before_commit",  # inside the transaction: everything done but COMMIT
    "load.committed",  # committed, staging file not yet deleted
    "storage.tree_renamed",  # a directory being deleted is renamed aside, not yet removed
)

_reached = Counter()
_counting = threading.Lock()  # pages are written by several threads


def crash_point(name: str) -> None:
    spec = os.environ.get(ENV_VARIABLE)
    if not spec:
        return
    point, _, nth = spec.partition("@")
    if point != name:
        return
    with _counting:
        _reached[name] += 1
        reached = _reached[name]
    if reached == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
