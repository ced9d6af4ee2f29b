"""A batch holding the pages of the last batch loaded: recorded as loaded without a staging file.

When a complete landing batch has the content hash of the dataset's last batch in the ledger (the same
pages, request and typing rules: the hash the transform would write into its staging file), and the
table provably still holds what that batch left (`table_state.still_holds`, as `batch._unchanged_since` checks, over
the columns the same staging file would have), typing it and loading it would change nothing. The runner
then records it here, in the ledger, skipped, and deletes the landing batch: no transform, no load.
"""

import json
import logging

import psycopg2

from src.contracts import ledger, staging
from src.contracts.catalog import relation_exists
from src.contracts.ledger import LedgerEntry
from src.load.columns import TableColumns
from src.load.table_state import still_holds
from src.load.tables import target_of
from src.locks import phase_lock
from src.storage import open_store
from src.text import one_line

log = logging.getLogger("gho_etl.load")


def record_if_loaded(settings, dataset, database, batch_id, content):
    """The rows the last batch staged when `content` is what it held and the table still holds what it left
    (the batch is then in the ledger, skipped); else None (the batch goes through transform and load)."""

    def record(cursor):
        staged = _record_same(cursor, dataset, batch_id, content)
        if staged is not None:  # retention, as every load keeps it
            pending = staging.batch_ids(open_store(settings), dataset.name)
            ledger.prune_batches(cursor, dataset.name, settings.history_days, pending)
        return staged

    return _in_transaction(settings, dataset, database, record)


def table_holds_last_batch(settings, dataset, database) -> bool:
    """Whether the table provably holds what the dataset's last batch left, under the dataset's settings now
    (its table, mode, columns and names): when it does not, a change probe that found nothing new is not
    enough, and the runner downloads in full (a value edited by hand is repaired, a new column filled)."""
    return _in_transaction(settings, dataset, database, lambda cursor: _proven(cursor, dataset)) is not None


def _in_transaction(settings, dataset, database, work):
    with phase_lock(settings, dataset.name, "load"):
        try:  # no DDL: without the ledger (or the table) there is no last batch to compare with
            with database.connection() as connection:
                with connection.cursor() as cursor:
                    if not relation_exists(cursor, ledger.LEDGER_TABLE):  # a first run: nothing loaded, nothing to say
                        connection.rollback()
                        return None
                    ledger.take_lock(cursor, dataset.name)
                    found = work(cursor)
                if found is None:
                    connection.rollback()
                    return None
                connection.commit()
                return found
        except psycopg2.Error as exc:  # a table changed by hand, or a column the settings add: the load says
            log.info("%s: the table does not hold its last batch as it was (%s)", dataset.name, one_line(exc))
            return None


def _proven(cursor, dataset):
    """The last batch's ledger row when the table holds what it left; else None."""
    last = ledger.last_applied(cursor, dataset.name)
    if last is None or last[1:3] != (dataset.table, dataset.mode) or None in last[3:6]:
        return None
    compared = sorted(TableColumns.of(dataset, json.loads(last[5])).compared)
    if not still_holds(cursor, target_of(cursor, dataset), compared, last[3], last[4]):
        return None
    return last


def _record_same(cursor, dataset, batch_id, content):
    last = _proven(cursor, dataset)
    if not content or last is None or last[0] != content:
        return None
    table_rows, table_fingerprint, names, staged = last[3:7]
    entry = LedgerEntry(
        dataset=dataset.name,
        batch_id=batch_id,
        table_name=dataset.table,
        mode=dataset.mode,
        rows_staged=staged,
        rows_inserted=0,
        rows_updated=0,
        content_hash=content,
        skipped=True,
        table_rows=table_rows,
        table_fingerprint=table_fingerprint,
        staging_columns=names,
    )
    ledger.record_batch(cursor, entry)
    log.info(
        "%s batch %s holds the pages of the last batch loaded into %s; recorded it, skipped (0 rows written)",
        dataset.name,
        batch_id,
        dataset.table,
        extra={"dataset": dataset.name, "batch_id": batch_id, "skipped": True},
    )
    return staged
