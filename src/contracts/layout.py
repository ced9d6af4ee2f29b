"""Where everything lives under the data directory: the one answer (README's "Where things go" table matches it).

Hand-off areas (landing, staging, rejects) are named by relative keys such as
`landing/<dataset>/<batch_id>/manifest.json`, which a store maps onto its
medium (`src.storage`): a folder today, object storage later. Files that only
make sense on this machine (locks, the embedded database, the scheduler's pid
and state) are plain paths from `Layout`.
"""

from pathlib import Path

LANDING = "landing"
STAGING = "staging"
REJECTS = "rejects"
DOWNLOADS = "downloads"

STAGING_SUFFIX = ".parquet"
REJECTS_SUFFIX = ".jsonl"


def landing_dir(dataset: str) -> str:
    return f"{LANDING}/{dataset}"


def landing_batch(dataset: str, batch_id: str) -> str:
    return f"{LANDING}/{dataset}/{batch_id}"


def staging_dir(dataset: str) -> str:
    return f"{STAGING}/{dataset}"


def staging_file(dataset: str, batch_id: str) -> str:
    return f"{STAGING}/{dataset}/{batch_id}{STAGING_SUFFIX}"


def last_download(dataset: str) -> str:
    return f"{DOWNLOADS}/{dataset}.json"


def rejects_dir(dataset: str) -> str:
    return f"{REJECTS}/{dataset}"


def rejects_file(dataset: str, batch_id: str) -> str:
    return f"{REJECTS}/{dataset}/{batch_id}{REJECTS_SUFFIX}"


class Layout:
    """The data directory of this machine, as paths."""

    def __init__(self, data_dir: Path):
        self.root = Path(data_dir)

    def path(self, key: str) -> Path:
        return self.root / key

    def landing(self, dataset: str) -> Path:
        return self.path(landing_dir(dataset))

    def staging(self, dataset: str) -> Path:
        return self.path(staging_dir(dataset))

    def rejects(self, dataset: str) -> Path:
        return self.path(rejects_dir(dataset))

    def staging_file(self, dataset: str, batch_id: str) -> Path:
        return self.path(staging_file(dataset, batch_id))

    def rejects_file(self, dataset: str, batch_id: str) -> Path:
        return self.path(rejects_file(dataset, batch_id))

    def lock_file(self, dataset: str, phase: str) -> Path:
        return self.root / "locks" / f"{dataset}.{phase}.lock"

    @property
    def postgres(self) -> Path:
        """The embedded database's data directory (used only when no database is configured)."""
        return self.root / "postgres"

    @property
    def scheduler_lock(self) -> Path:
        return self.root / "scheduler.lock"

    @property
    def scheduler_pid(self) -> Path:
        return self.root / "scheduler.pid"

    @property
    def scheduler_state(self) -> Path:
        return self.root / "scheduler_state.json"
