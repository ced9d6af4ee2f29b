"""What "converged" means, checked the same way by every reliability test.

A run converged when the target table equals a clean run's (a checksum of its
ordered rows, metadata columns aside), no natural key appears twice, every
batch in the table is in the ledger exactly once, and the data directory holds
no landing, staging or temporary file that a later run would trip over.
"""

import hashlib
import uuid
from pathlib import Path

import psycopg2
from psycopg2 import sql

from src.contracts import schema
from src.db import Database
from src.runner import Runner
from src.storage.disk import TEMP_PREFIX

METADATA = (schema.BATCH_COLUMN, schema.LOADED_AT_COLUMN)


def _administer(pg_server, statement) -> None:
    admin = psycopg2.connect(pg_server.get_uri())
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(statement)
    finally:
        admin.close()


def create_database(pg_server, options="") -> str:
    """A new, empty database (`options` go to CREATE DATABASE, e.g. an encoding); returns its URI."""
    name = "t_" + uuid.uuid4().hex[:12]
    _administer(pg_server, sql.SQL("CREATE DATABASE {} {}").format(sql.Identifier(name), sql.SQL(options)))
    return pg_server.get_uri(name)


def drop_database(pg_server, url) -> None:
    name = url.rsplit("/", 1)[-1].split("?")[0]
    _administer(pg_server, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def run_pipeline(settings) -> list:
    """Every enabled dataset through extract -> transform -> load, in this process."""
    runner = Runner(settings, Database(settings))
    return [o for dataset in settings.datasets.values() for o in runner.run_job(dataset)]


def table_checksum(url, table) -> tuple:
    """(row count, sha256 of the rows ordered by natural key), metadata columns left out."""
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY column_name", [table]
        )
        columns = [c for (c,) in cursor.fetchall() if c not in METADATA]
        key = sql.SQL(", ").join(sql.SQL("{} NULLS FIRST").format(sql.Identifier(c)) for c in schema.NATURAL_KEY)
        cursor.execute(
            sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table), key
            )
        )
        digest = hashlib.sha256(repr(columns).encode())
        count = 0
        for row in cursor:
            digest.update(repr(row).encode())
            count += 1
    connection.close()
    return count, digest.hexdigest()


def scalar(url, query, params=None):
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(query, params)
        value = cursor.fetchone()[0]
    connection.close()
    return value


def duplicate_keys(url, table) -> int:
    key = sql.SQL(", ").join(map(sql.Identifier, schema.NATURAL_KEY))
    query = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} GROUP BY {} HAVING count(*) > 1) AS duplicated").format(
        sql.Identifier(table), key
    )
    return scalar(url, query)


def batches_not_in_ledger(url, dataset, table) -> int:
    """Batches found in the table that the ledger does not list (should be none)."""
    query = sql.SQL(
        "SELECT count(DISTINCT t.{0}) FROM {1} t "
        "WHERE NOT EXISTS (SELECT 1 FROM etl_batches b WHERE b.dataset = %s AND b.batch_id = t.{0})"
    ).format(sql.Identifier(schema.BATCH_COLUMN), sql.Identifier(table))
    return scalar(url, query, [dataset])


def leftovers(data_dir) -> list:
    """Files a converged run must not leave: landing or staging batches, temporary files."""
    root = Path(data_dir)
    found = []
    for part in ("landing", "staging"):
        if (root / part).exists():
            found += [p for p in (root / part).rglob("*") if p.is_file()]
    found += [p for p in root.rglob(TEMP_PREFIX + "*") if "postgres" not in p.parts]
    return sorted(set(found))
