"""Hand-off folders of datasets no longer in DATASET_CONFIG: found for `status.py`, removed on request.

A dataset removed from the configuration leaves its landing, staging and
rejects folders behind, and the record of its last download (which a dataset
added again under the name would be compared with); nothing would ever process
or delete them. They are
removed only when the user asks (`status.py --remove-unknown`), each under the
dataset's phase locks, so no phase of an older configuration still running
is cut short (a dataset with a phase running is left, and said so).
"""

from contextlib import ExitStack

from src.contracts import layout
from src.errors import AlreadyRunning
from src.locks import phase_lock

AREAS = (layout.LANDING, layout.STAGING, layout.REJECTS)
PHASES = ("extract", "transform", "load")
RECORD_SUFFIX = ".json"  # layout.last_download(name) is downloads/<name>.json


def find(settings, store) -> list:
    """[{dataset, landing, staging, rejects, downloads}]: the entries each area holds, and 1 for a download
    record, by dataset name."""
    records = {name[: -len(RECORD_SUFFIX)] for name in store.files(layout.DOWNLOADS) if name.endswith(RECORD_SUFFIX)}
    names = sorted(({name for area in AREAS for name in store.folders(area)} | records) - set(settings.datasets))
    found = []
    for name in names:
        counts = {area: len(store.folders(f"{area}/{name}")) + len(store.files(f"{area}/{name}")) for area in AREAS}
        found.append({"dataset": name, **counts, layout.DOWNLOADS: int(name in records)})
    return found


def remove(settings, store) -> tuple:
    """(names removed, names left because a phase of theirs is running): each dataset on its own."""
    removed, busy = [], []
    for entry in find(settings, store):
        name = entry["dataset"]
        try:
            with ExitStack() as locks:
                for phase in PHASES:
                    locks.enter_context(phase_lock(settings, name, phase))
                for area in AREAS:
                    store.delete_tree(f"{area}/{name}")
                store.delete(layout.last_download(name))
        except AlreadyRunning:
            busy.append(name)
            continue
        removed.append(name)
    return removed, busy
