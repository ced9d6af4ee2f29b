"""Load: every staging batch of a dataset -> PostgreSQL, oldest first, one transaction each.

Each batch is streamed with one binary COPY (`copy_stream`) into a temporary
table and applied to the target with one set-based statement (`merge`); an
empty target, or replace mode, takes the COPY directly. A table created by the
load gets its unique index after the COPY, built in one sorted pass
(`tables`). A batch whose content hash equals the last one applied to the
dataset is skipped without touching the table, and a merge rewrites only rows
whose data changed (`batch`). A per-dataset advisory lock keeps two loads of
one dataset apart, on any machine sharing the database.
"""

import logging

import psycopg2
from psycopg2 import sql

from src.contracts import ledger, staging
from src.contracts.layout import Layout
from src.contracts.results import PhaseResult
from src.db import Database
from src.load.batch import load_batch
from src.load.labels import ensure_labeled_view
from src.load.sql_errors import classify
from src.locks import phase_lock
from src.storage import open_store

log = logging.getLogger("gho_etl.load")

# Session memory for one load: the temp table stays in memory, the
# unchanged-row filter hashes in memory instead of spilling to disk, and a new
# table's unique index is sorted in memory.
SESSION_SETTINGS = {"temp_buffers": "256MB", "work_mem": "256MB", "maintenance_work_mem": "256MB"}


def run(settings, dataset, database) -> PhaseResult:
    results = load_dataset(settings, dataset, database)
    return PhaseResult(
        rows_in=sum(r.rows_staged for r in results),
        rows_written=sum(r.inserted + r.updated for r in results),
        batches=len(results),
        details=results,
    )


def load_dataset(settings, dataset, database, store=None) -> list:
    """Apply every staging batch of a dataset, oldest first."""
    store = store or open_store(settings)
    with phase_lock(Layout(settings.data_dir), dataset.name, "load"):
        batches = staging.batch_ids(store, dataset.name)
        if not batches:
            log.info("%s: no staging batch to load", dataset.name, extra={"dataset": dataset.name})
            return []
        try:
            with database.connection() as connection:
                _prepare_session(connection)
                results = [load_batch(connection, store, dataset, batch_id) for batch_id in batches]
                _prune_history(connection, settings, dataset, store)
                _label(connection, dataset)
                return results
        except psycopg2.Error as exc:
            raise classify(exc, dataset.name, dataset.table) from None


def _prune_history(connection, settings, dataset, store):
    """Retention (`ledger.prune`), in its own transaction, once the batches are safe."""
    with connection.cursor() as cursor:
        ledger.prune_batches(cursor, dataset.name, settings.history_days, staging.batch_ids(store, dataset.name))
    connection.commit()


def _label(connection, dataset):
    """The labelled view, once the data is safe: a failure is a warning, never a failed load."""
    try:
        ensure_labeled_view(connection, dataset)
    except psycopg2.Error as exc:
        log.warning(
            "%s: the labelled view was not made: %s",
            dataset.name,
            str(exc).strip().splitlines()[0],
            extra={"dataset": dataset.name},
        )


def _prepare_session(connection):
    """The schema, the session's memory and the ledger; a pooled connection a load prepared before keeps its
    settings (SET lasts the session), so only the ledger is checked again."""
    if not getattr(connection, "prepared_for_load", False):
        Database.ensure_schema(connection)
        with connection.cursor() as cursor:
            for name, value in SESSION_SETTINGS.items():
                cursor.execute(sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        connection.commit()
        connection.prepared_for_load = True
    ledger.ensure_ledger(connection)
