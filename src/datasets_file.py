"""The datasets file (GHO_DATASETS_FILE, default config/datasets.json): datasets added to DATASET_CONFIG.

`scripts/indicators.py` edits it; the pipeline reads it through `config.config` and merges it here. A
new name is a whole entry; the name of a dataset of DATASET_CONFIG changes only the keys given (so
`{"enabled": false}` disables a built-in one). An edit is validated together with DATASET_CONFIG
before it is written, and written atomically (temp file, fsync, rename) under an exclusive lock on
the file's folder, so two edits at once never lose one another and a reader never sees half a file.
"""

import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from src.errors import ConfigError


def merge_datasets(base, added, source="GHO_DATASETS_FILE") -> dict:
    """DATASET_CONFIG with the file's entries added; ConfigError naming `source` for a malformed file."""
    if not isinstance(added, dict):
        raise ConfigError(f"{source}: must be a JSON object mapping dataset names to settings")
    if not isinstance(base, dict):
        return base  # validate_datasets says what is wrong with it
    merged = dict(base)
    for name, entry in added.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{source}: dataset {name!r} must be an object of settings")
        known = merged.get(name)
        if isinstance(known, dict):
            # indicator and indicators are one setting: the file's replaces the other spelling too.
            replaced = {"indicator", "indicators"} if {"indicator", "indicators"} & set(entry) else set()
            merged[name] = {**{k: v for k, v in known.items() if k not in replaced}, **entry}
        else:
            merged[name] = entry
    return merged


def configured_datasets(cfg, validate_datasets) -> dict:
    """The Datasets of `config.config`: DATASET_CONFIG with the file's entries, validated by `validate_datasets`."""
    if cfg.DATASETS_FILE_ERROR:
        raise ConfigError(cfg.DATASETS_FILE_ERROR)
    source = f"GHO_DATASETS_FILE {cfg.DATASETS_FILE}"
    try:
        return validate_datasets(merge_datasets(cfg.DATASET_CONFIG, cfg.DATASETS_FILE_ENTRIES, source))
    except ConfigError as exc:
        if cfg.DATASETS_FILE_ENTRIES and not str(exc).startswith(source):
            raise ConfigError(f"{exc} (the datasets come from config.py and {cfg.DATASETS_FILE})") from None
        raise


@contextmanager
def _folder_lock(folder: Path):
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def read_entries(path: Path) -> dict:
    """The file's entries ({} when it does not exist)."""
    from config.config import read_dataset_file  # the one reader, with its bounds

    if str(path) == os.devnull or not os.path.lexists(path):
        return {}
    try:
        entries = read_dataset_file(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"GHO_DATASETS_FILE {path}: {exc}") from None
    if not isinstance(entries, dict):
        raise ConfigError(f"GHO_DATASETS_FILE {path}: must be a JSON object mapping dataset names to settings")
    return entries


def edit(path: Path, base: dict, change) -> dict:
    """Apply `change(entries) -> entries` to the file, validated with `base`; return the new entries."""
    from src.settings import validate_datasets

    if str(path) == os.devnull:
        raise ConfigError(f"GHO_DATASETS_FILE is {os.devnull}: set it to a file to add datasets to")
    path = Path(os.path.realpath(path))  # a symlinked file stays a symlink: its target is what is rewritten
    path.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(path.parent):
        entries = change(dict(read_entries(path)))
        validate_datasets(merge_datasets(base, entries, f"GHO_DATASETS_FILE {path}"))
        _write(path, entries)
    return entries


def _write(path: Path, entries: dict) -> None:
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(entries, stream, indent=2, ensure_ascii=False)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
