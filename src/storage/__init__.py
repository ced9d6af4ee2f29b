"""The storage seam: where phases put and find hand-off files (landing, staging, rejects).

A phase never touches the medium itself; it asks a `Store` for files by the
relative keys of `src.contracts.layout`. The store is a local folder
(`LocalFolder`) unless object storage is configured: one more module implementing the
same methods, chosen in `open_store`: `S3Store` (`src.storage.s3`) when
GHO_HANDOFF_URL names a bucket. What every store guarantees:
- a file written (`write_bytes`, `new_file`) appears whole at its key or not at all;
- `delete_tree` never leaves a half-deleted batch that a listing would show;
- `sweep` removes what a killed writer left behind (call it under the phase lock);
- names starting with "." are the store's own and never listed.
"""

import json
from abc import ABC, abstractmethod
from contextlib import contextmanager
from pathlib import Path

from src.storage.disk import json_bytes


class Store(ABC):
    """Hand-off files named by relative, "/"-separated keys."""

    @abstractmethod
    def folders(self, prefix: str) -> list:
        """Names of the folders directly under `prefix` (on object storage: common prefixes), sorted."""

    @abstractmethod
    def files(self, prefix: str) -> list:
        """Names of the files directly under `prefix`, sorted."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The file's content; OSError when it cannot be read."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove one file (a missing one is fine)."""

    @abstractmethod
    def delete_tree(self, prefix: str) -> None:
        """Remove everything under `prefix`, so that a crash half-way leaves it listed whole or not at all."""

    @abstractmethod
    def sweep(self, prefix: str) -> int:
        """Remove what killed writers left under `prefix`; return how many were removed."""

    @abstractmethod
    @contextmanager
    def new_file(self, key: str):
        """Yield a local scratch path to write with any library; it appears at `key` only if the block succeeds.

        Whatever is at the path when the block ends is published, so the caller
        may also replace the file atomically (`storage.disk.atomic_path(path)`),
        as the transform does when it rewrites a batch without its duplicates.
        """

    @abstractmethod
    @contextmanager
    def local_file(self, key: str):
        """Yield a local path holding the file at `key`, for libraries that read paths (Parquet)."""

    @abstractmethod
    def describe(self, key: str) -> str:
        """Where `key` is, for a message a user can act on."""

    def read_json(self, key: str):
        return json.loads(self.read_bytes(key).decode("utf-8"))

    def write_json(self, key: str, obj) -> None:
        self.write_bytes(key, json_bytes(obj))


SCRATCH_DIR = ".scratch"  # under the data directory: where an object store's files are written and read locally


def open_store(settings) -> Store:
    """The store that holds this installation's hand-off files."""
    if getattr(settings, "handoff_url", None):
        from src.storage.s3 import S3Store

        return S3Store(settings.handoff_url, Path(settings.data_dir) / SCRATCH_DIR)
    from src.storage.local import LocalFolder

    return LocalFolder(Path(settings.data_dir))


def check_store(settings) -> None:
    """Before any phase runs: the configured object store is reachable and ours to use (one line otherwise)."""
    store = open_store(settings)
    if hasattr(store, "check"):
        store.check()
