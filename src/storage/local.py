"""The store on a local folder: the data directory (`GHO_DATA_DIR`)."""

from contextlib import contextmanager
from pathlib import Path

from src.contracts.layout import Layout
from src.storage import Store
from src.storage.disk import atomic_path, remove_tree, sweep_temp_files, write_bytes_atomic


class LocalFolder(Store):
    def __init__(self, root: Path):
        self.root = Path(root)
        self._layout = Layout(self.root)

    def _path(self, key: str) -> Path:
        return self._layout.path(key)

    def folders(self, prefix: str) -> list:
        return [p.name for p in self._entries(prefix) if p.is_dir()]

    def files(self, prefix: str) -> list:
        return [p.name for p in self._entries(prefix) if p.is_file()]

    def _entries(self, prefix: str) -> list:
        directory = self._path(prefix)
        if not directory.is_dir():
            return []
        return sorted((p for p in directory.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        write_bytes_atomic(self._path(key), data)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_tree(self, prefix: str) -> None:
        remove_tree(self._path(prefix))

    def sweep(self, prefix: str) -> int:
        return sweep_temp_files(self._path(prefix))

    @contextmanager
    def new_file(self, key: str):
        with atomic_path(self._path(key)) as temp:
            yield temp

    @contextmanager
    def local_file(self, key: str):
        yield self._path(key)

    def describe(self, key: str) -> str:
        return str(self._path(key))
