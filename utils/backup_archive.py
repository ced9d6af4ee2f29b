"""What an S3 backup holds and how a restore is checked: the archive side of `s3_backup.py`."""

import fnmatch
import hashlib
import os
import tarfile
from pathlib import Path, PurePosixPath

ARCHIVE_SUFFIX = ".tar.gz"
SKIP_DIRS = {
    ".git",
    ".venv",
    "venv",
    ".ci-venv",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    "data",
    "logs",
    "node_modules",
    ".mypy_cache",
}
SKIP_SUFFIXES = (".pyc", ".pyo")
# Names of files that hold secrets by convention: never archived, wherever they are.
SECRET_FILES = (
    ".env",
    ".env.*",
    ".env-*",
    "*.env",
    ".envrc",
    ".pgpass",
    ".netrc",
    ".git-credentials",
    ".pypirc",
    ".npmrc",
    "kubeconfig",
    "*service-account*.json",
    "*.kdbx",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "secrets.*",
    "*.secret",
    "*.secrets",
    "credentials*",
)
SHAREABLE = (".env.example",)
RESTORE_RATIO = 100
RESTORE_FLOOR_BYTES = 64 << 20


class BackupError(Exception):
    """A failure to report as one line (exit code 1)."""


def _skipped_dir(path: Path) -> bool:
    """Caches, data, logs and any virtual environment, whatever its name (one has a pyvenv.cfg).

    A folder the user may not look into is not skipped here: the walk passes over it, as it always did.
    """
    if path.name in SKIP_DIRS or path.name.endswith(".egg-info"):
        return True
    try:
        return (path / "pyvenv.cfg").is_file()
    except OSError:
        return False


def project_files(root: Path, include_landing=False):
    """Relative paths of what a backup holds, sorted."""
    files = []
    for directory, subdirs, names in os.walk(root):
        relative_dir = Path(directory).relative_to(root)
        subdirs[:] = sorted(d for d in subdirs if not _skipped_dir(Path(directory) / d))
        for name in sorted(names):
            if is_secret(name) or name.endswith(SKIP_SUFFIXES):
                continue
            path = Path(directory) / name
            if path.is_file() and not path.is_symlink():
                files.append(relative_dir / name)
    if include_landing:
        landing = root / "data" / "landing"
        if landing.is_dir():
            files += sorted(p.relative_to(root) for p in landing.rglob("*") if p.is_file() and not p.is_symlink())
    return files


def is_secret(name: str) -> bool:
    return name not in SHAREABLE and any(fnmatch.fnmatchcase(name.lower(), pattern) for pattern in SECRET_FILES)


def build_archive(root: Path, destination: Path, include_landing=False) -> int:
    files = project_files(root, include_landing)
    with tarfile.open(destination, "w:gz") as archive:
        for relative in files:
            archive.add(root / relative, arcname=str(PurePosixPath(*relative.parts)), recursive=False)
    return len(files)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_members(archive: tarfile.TarFile, target: Path, max_bytes: int):
    """Refuse any member that would land outside `target` or is not a plain file or directory, and an
    archive whose files add up to more than `max_bytes` (checked from the headers, before anything is written)."""
    base = target.resolve()
    unpacked = 0
    for member in archive.getmembers():
        unpacked += member.size
        if unpacked > max_bytes:
            total = sum(m.size for m in archive.getmembers())
            raise BackupError(
                f"the archive unpacks to {total} bytes, more than the {max_bytes} allowed; nothing restored "
                "(pass --max-bytes N to allow more)"
            )
        destination = (base / member.name).resolve()
        if member.name.startswith("/") or (destination != base and base not in destination.parents):
            raise BackupError(f"archive member {member.name!r} would escape {target}; refusing to restore")
        if not (member.isfile() or member.isdir()):
            raise BackupError(f"archive member {member.name!r} is a link or device; refusing to restore")
