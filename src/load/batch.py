"""Loading one staging batch in one transaction, exactly once.

The transaction takes the dataset's advisory lock, asks the ledger whether
the batch was already applied, creates or evolves the table, skips a batch
identical to the last one applied, applies the rest, and records the batch in
`etl_batches`, so a batch whose commit happened is never applied again,
whatever crashed afterwards. The staging file is deleted only after the commit.
"""

import enum
import json
import logging
import time
from dataclasses import dataclass

import psycopg2
import pyarrow.parquet as pq

from src.contracts import layout, ledger
from src.contracts.ledger import LedgerEntry
from src.contracts.staging import content_hash_of
from src.faultpoints import crash_point
from src.load.columns import TableColumns
from src.load.merge import apply_batch
from src.load.table_state import filled_here, fingerprint, is_filled_here, still_holds, written_by
from src.load.tables import ensure_natural_key, ensure_table, target_of

log = logging.getLogger("gho_etl.load")


class Outcome(enum.Enum):
    APPLIED = "applied"
    ALREADY_APPLIED = "already applied"  # its commit happened before; only its staging file was left
    IDENTICAL = "identical"  # same content as the last batch applied, and the table unchanged since


@dataclass
class LoadResult:
    dataset: str
    batch_id: str
    table: str
    rows_staged: int
    inserted: int
    updated: int
    skipped: bool
    seconds: float


def load_batch(connection, store, dataset, batch_id) -> LoadResult:
    started = time.monotonic()
    key = layout.staging_file(dataset.name, batch_id)
    with store.local_file(key) as path:
        staging = pq.ParquetFile(path)
        try:
            with connection.cursor() as cursor:
                outcome, inserted, updated = _apply_once(cursor, dataset, batch_id, staging)
            crash_point("load.before_commit")
            connection.commit()
        except BaseException:
            _rollback_quietly(connection)
            raise
    crash_point("load.committed")
    store.delete(key)
    result = LoadResult(
        dataset.name,
        batch_id,
        dataset.table,
        staging.metadata.num_rows,
        inserted,
        updated,
        outcome is not Outcome.APPLIED,
        time.monotonic() - started,
    )
    _log_result(dataset, result, outcome)
    return result


def _apply_once(cursor, dataset, batch_id, staging):
    """(outcome, rows inserted, rows updated), all inside the caller's transaction."""
    ledger.take_lock(cursor, dataset.name)
    if ledger.is_applied(cursor, dataset.name, batch_id):
        return Outcome.ALREADY_APPLIED, 0, 0
    columns = TableColumns.of(dataset, staging.schema_arrow.names)
    rows = staging.metadata.num_rows
    content = content_hash_of(staging.schema_arrow)
    target = target_of(cursor, dataset)
    table_state = ensure_table(cursor, target, dataset, columns)
    outcome, inserted, updated = Outcome.APPLIED, 0, 0
    compared = sorted(columns.compared)  # what a table must still hold for a batch to be skipped
    proven = _unchanged_since(cursor, dataset, target, content, compared) if table_state == "ready" else None
    if proven:
        outcome = Outcome.IDENTICAL
    elif rows == 0 and dataset.mode == "replace":
        log.warning("%s: empty batch %s; replace mode keeps the table as it is", dataset.name, batch_id)
    else:
        inserted, updated = apply_batch(cursor, dataset, staging, columns, batch_id, table_state == "created")
        crash_point("load.applied")
    if table_state == "created":
        ensure_natural_key(cursor, target, columns.index_key)
    if proven:
        table_rows, table_fingerprint = proven
    elif table_state == "created":  # every row carries this transaction's id: no scan (`table_state`)
        table_rows, table_fingerprint = inserted, filled_here(cursor, target, compared)
    elif dataset.mode == "replace":  # its values, so that one rewriting the same values is no change
        table_rows, table_fingerprint = fingerprint(cursor, target, compared)
    else:
        table_rows, table_fingerprint = written_by(cursor, target, compared)
    entry = LedgerEntry(
        dataset=dataset.name,
        batch_id=batch_id,
        table_name=dataset.table,
        mode=dataset.mode,
        rows_staged=rows,
        rows_inserted=inserted,
        rows_updated=updated,
        content_hash=content,
        skipped=outcome is Outcome.IDENTICAL,
        table_rows=table_rows,
        table_fingerprint=table_fingerprint,
        staging_columns=json.dumps(staging.schema_arrow.names),
    )
    ledger.record_batch(cursor, entry)
    return outcome, inserted, updated


def _unchanged_since(cursor, dataset, target, content, compared):
    """(rows, state) the ledger recorded when `content` is what was last applied and the table provably
    still holds what that left; else None.

    Proven by the state recorded after every batch (`table_state`): a value edited, a row added or
    deleted by hand makes the batch apply again, which repairs the table. A ledger row of an earlier
    version has no state: applied once more. A replace about to rewrite a table that still holds
    what its creating load left first restates that load's state as a fingerprint, so the two can
    be compared (`ledger.last_changes`: a replace that rewrote the same values changed nothing; a
    merge or an append changed values exactly when it wrote a row).
    """
    last = ledger.last_applied(cursor, dataset.name)
    if last is None or last[1:3] != (dataset.table, dataset.mode):
        return None
    same_content = bool(content) and last[0] == content
    restate = dataset.mode == "replace" and is_filled_here(last[4])
    if not (same_content or restate) or not still_holds(cursor, target, compared, *last[3:5]):
        return None  # a changed batch is applied without scanning, unless its state is to be restated
    if same_content:
        return last[3], last[4]
    ledger.restate(cursor, dataset.name, last[7], *fingerprint(cursor, target, compared))
    return None


def _rollback_quietly(connection) -> None:
    """Roll back, unless the connection is already gone (then the server rolled back)."""
    try:
        connection.rollback()
    except (psycopg2.InterfaceError, psycopg2.OperationalError):
        pass


def _log_result(dataset, result, outcome):
    if outcome is Outcome.ALREADY_APPLIED:
        log.info("%s batch %s was already applied; removed its staging file", dataset.name, result.batch_id)
        return
    if outcome is Outcome.IDENTICAL:
        log.info(
            "%s batch %s is identical to the last batch applied to %s; skipped it (0 rows written)",
            dataset.name,
            result.batch_id,
            dataset.table,
            extra={"dataset": dataset.name, "batch_id": result.batch_id, "rows": result.rows_staged, "skipped": True},
        )
        return
    log.info(
        "loaded %s batch %s into %s (%s): %d staged, %d inserted, %d updated",
        dataset.name,
        result.batch_id,
        dataset.table,
        dataset.mode,
        result.rows_staged,
        result.inserted,
        result.updated,
        extra={
            "dataset": dataset.name,
            "batch_id": result.batch_id,
            "rows": result.rows_staged,
            "inserted": result.inserted,
            "updated": result.updated,
        },
    )
