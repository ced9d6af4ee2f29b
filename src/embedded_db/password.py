"""The generated password every connection to the embedded server needs.

It lives in `postgres.password` beside the cluster (0600, this user only) and
in `postgres.pgpass` (libpq's password-file format, 0600), which the URI that
`scripts/db.py uri` prints names as its `passfile`, so no secret is ever
printed. A new cluster is made with it (`server`); a cluster of an earlier
version that trusted local connections gets it set for the `postgres` role
while trust still holds, then pg_hba.conf says scram-sha-256 everywhere and
the server rereads it.
"""

import os
import secrets
import signal
from pathlib import Path

import psycopg2

from src.errors import DatabaseUnavailable
from src.storage.disk import write_bytes_atomic

PASSWORD_SUFFIX = ".password"
PGPASS_SUFFIX = ".pgpass"
RELOAD_SUFFIX = ".reload"


def password_file(cluster) -> Path:
    return cluster.with_name(cluster.name + PASSWORD_SUFFIX)


def pgpass_file(cluster) -> Path:
    return cluster.with_name(cluster.name + PGPASS_SUFFIX)


def generated(cluster) -> str:
    """The cluster's password, made now if there is none yet (a cluster made earlier must already have it)."""
    secret_file = password_file(cluster)
    if not secret_file.exists():
        if (cluster / "PG_VERSION").exists() and not _trusts_any(cluster):
            raise DatabaseUnavailable(
                f"{secret_file} is missing, and the embedded database in {cluster} asks for the password it held: "
                "put the file back, or remove that folder to start an empty database"
            )
        write_bytes_atomic(secret_file, secrets.token_urlsafe(32).encode())  # mkstemp: 0600
    password = secret_file.read_text().strip()
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    write_bytes_atomic(pgpass_file(cluster), f"*:*:*:postgres:{escaped}\n".encode())
    return password


def require(server, cluster, password) -> None:
    """Migrate a cluster that still trusts local connections, and make its server reread pg_hba.conf.

    `postgres.reload` exists from before pg_hba.conf is rewritten until the
    server was told: a run killed in between leaves it, and the next start
    tells the server then.
    """
    hba = cluster / "pg_hba.conf"
    pending = cluster.with_name(cluster.name + RELOAD_SUFFIX)
    if _trusts_any(cluster):
        connection = psycopg2.connect(server.get_uri(), connect_timeout=10)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("ALTER ROLE postgres PASSWORD %s", [password])
        finally:
            connection.close()
        pending.touch()
        lines = hba.read_text().splitlines()
        _replace_keeping_owner(hba, "".join(_scram(line) + "\n" for line in lines))
    if pending.exists():
        os.kill(server.get_pid(), signal.SIGHUP)
        pending.unlink()


def _trusts_any(cluster) -> bool:
    try:
        return any(_trusts(line) for line in (cluster / "pg_hba.conf").read_text().splitlines())
    except FileNotFoundError:
        return False


def _trusts(line) -> bool:
    fields = line.split("#", 1)[0].split()
    return bool(fields) and fields[-1] == "trust"


def _scram(line) -> str:
    return line.rsplit("trust", 1)[0] + "scram-sha-256" if _trusts(line) else line


def _replace_keeping_owner(path, text):
    """Write `path` atomically; as root the server runs as another user, who must still own its file."""
    owner = path.stat()
    temp = path.with_name(path.name + ".new")
    temp.write_text(text)
    os.chown(temp, owner.st_uid, owner.st_gid)
    os.chmod(temp, 0o600)
    os.replace(temp, path)
