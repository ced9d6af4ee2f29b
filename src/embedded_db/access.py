"""Where the embedded server may live and listen without opening a door to other local users.

As root, PostgreSQL runs as the system user `pgserver` (the server refuses to
run as root), which must enter every folder above its data directory and its
binaries. The package would `chmod go+rx` each of them; we change nothing
outside our data directory. `data/` itself becomes enterable by the
`pgserver` group alone (0710); above it a folder the service account cannot
enter is reported with what to do.

The server listens on a Unix socket only (no TCP). Its folder is the cluster
directory (0700) when the path fits a socket address; otherwise a private
folder of our own (0700, owned by the server's user, never a shared one).
"""

import hashlib
import os
import pwd
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

from src.errors import ConfigError, DatabaseUnavailable

SERVICE_USER = "pgserver"
SOCKET_NAME = ".s.PGSQL.5432"
# sun_path holds 108 bytes on Linux and 104 on macOS, the terminating NUL included.
MAX_SOCKET_PATH = 103
PWFILE_PREFIX = ".pwfile-"  # a kill may leave one; the next start removes it


def service_account():
    """The passwd entry the server runs as: the `pgserver` user when we are root, else ourselves."""
    return pwd.getpwnam(SERVICE_USER) if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())


def open_data_dir_to_service(data_dir: Path, account) -> None:
    """Let the service account enter `data_dir` (ours): group `pgserver`, 0710; nothing else changes."""
    os.chown(data_dir, -1, account.pw_gid)
    os.chmod(data_dir, 0o710)


def require_enterable(paths, account) -> None:
    """ConfigError naming the first folder of `paths` or above them that the service account cannot enter.

    Folders not made yet are skipped: made by us under umask 077, they are
    checked when the next start finds them.
    """
    for path in paths:
        for folder in [Path(path), *Path(path).parents]:
            if folder.exists() and not _may_enter(folder.stat(), account):
                raise ConfigError(
                    f"as root the embedded PostgreSQL runs as the user {account.pw_name!r}, which cannot enter "
                    f"{folder} (mode {stat.filemode(folder.stat().st_mode)}), and gho-etl changes no permission "
                    "outside its data directory: move the project (its data directory and virtualenv) under a "
                    "folder other users may enter, run as a non-root user, or set DATABASE_URL"
                )


def _may_enter(status, account) -> bool:
    if status.st_uid == account.pw_uid:
        return bool(status.st_mode & stat.S_IXUSR)
    if status.st_gid == account.pw_gid:  # the server's programs run with this one group (server._run)
        return bool(status.st_mode & stat.S_IXGRP)
    return bool(status.st_mode & stat.S_IXOTH)


def socket_dir(cluster: Path, account) -> Path:
    """A folder only the server's user may use, short enough for a socket address."""
    if _fits(cluster):
        return cluster
    base = Path(tempfile.gettempdir())
    mine = base / f"gho-etl-pg-{hashlib.sha256(os.fsencode(cluster)).hexdigest()[:12]}"
    try:
        os.mkdir(mine, 0o700)
        os.chown(mine, account.pw_uid, account.pw_gid)
    except FileExistsError:
        pass
    if not _private_to(mine, account):  # someone else made it first: a fresh, unguessable one
        mine = Path(tempfile.mkdtemp(prefix=mine.name + "-", dir=base))
        os.chown(mine, account.pw_uid, account.pw_gid)
    if not _fits(mine):
        raise DatabaseUnavailable(f"no folder short enough for the embedded PostgreSQL's socket: {mine} (set TMPDIR)")
    return mine


def _fits(folder: Path) -> bool:
    return len(os.fsencode(folder / SOCKET_NAME)) <= MAX_SOCKET_PATH


def _private_to(folder: Path, account) -> bool:
    status = os.lstat(folder)
    return stat.S_ISDIR(status.st_mode) and status.st_uid == account.pw_uid and status.st_mode & 0o077 == 0


@contextmanager
def secret_for_service(folder: Path, secret: str, account):
    """A file in `folder` holding `secret`, readable by the service account and its owner only; removed after."""
    handle, name = tempfile.mkstemp(dir=folder, prefix=PWFILE_PREFIX)
    try:
        try:
            if account.pw_uid != os.geteuid():
                os.fchown(handle, -1, account.pw_gid)
                os.fchmod(handle, 0o640)
            os.write(handle, secret.encode() + b"\n")
        finally:
            os.close(handle)
        yield name
    finally:
        os.unlink(name)
