"""The pipeline's own tables in the target database: names, definitions and the queries on them.

- `etl_batches`, the load ledger: one row per staging batch applied (or found
  identical), written in the batch's own transaction, so a batch whose commit
  happened is never applied again. Rows are pruned by age, a skipped batch's
  an hour after it, and never while its staging file is here (`prune_batches`).
- `etl_runs`, the run history: one row per run of a phase, whoever started it.

Definitions evolve only by additions (`ADD COLUMN IF NOT EXISTS`), under one
advisory lock, so processes of different versions can share a database.
"""

from dataclasses import astuple, dataclass, fields
from typing import Optional

from psycopg2 import sql

from src.contracts.catalog import column_names, relation_exists

LEDGER_TABLE = "etl_batches"
RUNS_TABLE = "etl_runs"
SYSTEM_TABLES = (LEDGER_TABLE, RUNS_TABLE)


def lock_key(name: str) -> str:
    """The text an advisory lock of ours hashes: one per dataset, and "ddl" for our tables."""
    return f"gho-etl:{name}"


def take_lock(cursor, name: str) -> None:
    """Hold a transaction-level advisory lock (released at commit or rollback)."""
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [lock_key(name)])


_LEDGER_DDL = """CREATE TABLE IF NOT EXISTS {} (
    dataset text NOT NULL,
    batch_id text NOT NULL,
    table_name text NOT NULL,
    mode text NOT NULL,
    rows_staged bigint NOT NULL,
    rows_inserted bigint NOT NULL,
    rows_updated bigint NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset, batch_id))"""
# Columns added after the first release: older ledgers gain them in place.
_LEDGER_ADDITIONS = (
    "ALTER TABLE {} ADD COLUMN IF NOT EXISTS content_hash text, "
    "ADD COLUMN IF NOT EXISTS skipped boolean NOT NULL DEFAULT false, "
    "ADD COLUMN IF NOT EXISTS table_rows bigint, "
    "ADD COLUMN IF NOT EXISTS table_fingerprint text, "
    "ADD COLUMN IF NOT EXISTS staging_columns text"
)
_RUNS_DDL = """CREATE TABLE IF NOT EXISTS {} (
    id bigserial PRIMARY KEY,
    run_id text NOT NULL,
    dataset text NOT NULL,
    phase text NOT NULL,
    status text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    rows_in bigint,
    rows_written bigint,
    rows_rejected bigint,
    batches integer,
    error text,
    pid integer,
    host text,
    trigger text)"""
_RUNS_ADDITIONS = "ALTER TABLE {} ADD COLUMN IF NOT EXISTS unchanged_by text"
_RUNS_INDEX = "CREATE INDEX IF NOT EXISTS etl_runs_dataset_started ON {} (dataset, started_at DESC)"


def _execute(cursor, statement, table, params=None):
    """Our tables live in the schema the connection loads into (`src.db`), named with it."""
    where = getattr(cursor.connection, "schema", None)
    name = sql.Identifier(where, table) if where else sql.Identifier(table)
    cursor.execute(sql.SQL(statement).format(name), params)


def ensure_ledger(connection) -> None:
    """The ledger, made or given its later columns when it lacks any; no DDL (and none of its locks, which
    every load took on etl_batches) when it has them all."""
    with connection, connection.cursor() as cursor:
        if set(column_names(cursor, LEDGER_TABLE)) >= {f.name for f in fields(LedgerEntry)}:
            return
        take_lock(cursor, "ddl")
        _execute(cursor, _LEDGER_DDL, LEDGER_TABLE)
        _execute(cursor, _LEDGER_ADDITIONS, LEDGER_TABLE)


def ensure_runs_table(connection) -> None:
    with connection, connection.cursor() as cursor:
        take_lock(cursor, "ddl")
        _execute(cursor, _RUNS_DDL, RUNS_TABLE)
        _execute(cursor, _RUNS_ADDITIONS, RUNS_TABLE)
        _execute(cursor, _RUNS_INDEX, RUNS_TABLE)


# --- etl_batches ----------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerEntry:
    """One row of `etl_batches`, in column order."""

    dataset: str
    batch_id: str
    table_name: str
    mode: str
    rows_staged: int
    rows_inserted: int
    rows_updated: int
    content_hash: str
    skipped: bool
    table_rows: int
    table_fingerprint: str
    staging_columns: Optional[str] = None  # JSON list of the staging file's columns


def is_applied(cursor, dataset: str, batch_id: str) -> bool:
    _execute(cursor, "SELECT 1 FROM {} WHERE dataset = %s AND batch_id = %s", LEDGER_TABLE, [dataset, batch_id])
    return cursor.fetchone() is not None


def last_applied(cursor, dataset: str):
    """(content hash, table, mode, rows in the table, its state, the staging columns (JSON), rows staged,
    batch id) after the dataset's latest batch, or None."""
    _execute(
        cursor,
        "SELECT content_hash, table_name, mode, table_rows, table_fingerprint, staging_columns, rows_staged, "
        "batch_id "
        "FROM {} WHERE dataset = %s "
        "ORDER BY loaded_at DESC, batch_id DESC LIMIT 1",
        LEDGER_TABLE,
        [dataset],
    )
    return cursor.fetchone()


def restate(cursor, dataset: str, batch_id: str, table_rows: int, table_fingerprint: str) -> None:
    """Record the table's state after a batch in another form, proven equal to the one recorded."""
    _execute(
        cursor,
        "UPDATE {} SET table_fingerprint = %s WHERE dataset = %s AND batch_id = %s AND table_rows = %s",
        LEDGER_TABLE,
        [table_fingerprint, dataset, batch_id, table_rows],
    )


def record_batch(cursor, entry: LedgerEntry) -> None:
    _execute(
        cursor,
        "INSERT INTO {} (dataset, batch_id, table_name, mode, rows_staged, rows_inserted, rows_updated, "
        "content_hash, skipped, table_rows, table_fingerprint, staging_columns) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        LEDGER_TABLE,
        list(astuple(entry)),
    )


# Rows of skipped identical batches outlive their batch this long: a load on another machine that
# committed one and crashed before deleting its staging file still finds it when it comes back.
SKIPPED_GRACE_HOURS = 1


def prune_batches(cursor, dataset: str, days: int, pending: list) -> None:
    """Bound the ledger of a dataset, under its advisory lock (as every batch is applied).

    A row is kept while its batch is pending (its staging file still exists:
    exactly-once needs it) and for the latest batch (the identical-batch check
    reads it). Other rows go after `days`, and rows of skipped identical batches
    after SKIPPED_GRACE_HOURS, so an unchanged dataset keeps a few ledger rows,
    not one a run.
    """
    take_lock(cursor, dataset)
    _execute(
        cursor,
        "DELETE FROM {0} WHERE dataset = %s AND batch_id <> ALL(%s) AND batch_id IS DISTINCT FROM "
        "(SELECT batch_id FROM {0} WHERE dataset = %s ORDER BY loaded_at DESC, batch_id DESC LIMIT 1) "
        "AND ((skipped AND loaded_at < now() - %s * interval '1 hour') OR loaded_at < now() - %s * interval '1 day')",
        LEDGER_TABLE,
        [dataset, list(pending), dataset, SKIPPED_GRACE_HOURS, days],
    )


def prune_runs(cursor, dataset, days: int, rows_kept: int, aged=True) -> None:
    """Bound the run history: rows older than `days` (any dataset, configured or not, and runs a crash
    left 'running'; unless `aged` is false), and beyond the newest `rows_kept` of `dataset` (one row per
    phase run; none when `dataset` is None)."""
    if aged:
        _execute(cursor, "DELETE FROM {0} WHERE started_at < now() - %s * interval '1 day'", RUNS_TABLE, [days])
    if dataset is None:
        return
    _execute(
        cursor,
        "DELETE FROM {0} WHERE dataset = %s AND status <> 'running' AND id < (SELECT coalesce(min(id), 0) "
        "FROM (SELECT id FROM {0} WHERE dataset = %s ORDER BY id DESC LIMIT %s) AS newest)",
        RUNS_TABLE,
        [dataset, dataset, rows_kept],
    )


# --- etl_runs -------------------------------------------------------------------------


def insert_run(cursor, run_id, dataset, phase, pid, host, trigger) -> int:
    _execute(
        cursor,
        "INSERT INTO {} (run_id, dataset, phase, status, pid, host, trigger) "
        "VALUES (%s, %s, %s, 'running', %s, %s, %s) RETURNING id",
        RUNS_TABLE,
        [run_id, dataset, phase, pid, host, trigger],
    )
    return cursor.fetchone()[0]


def finish_run(cursor, row_id, status, rows_in, rows_written, rows_rejected, batches, error, unchanged_by=None):
    _execute(
        cursor,
        "UPDATE {} SET status = %s, finished_at = now(), rows_in = %s, rows_written = %s, "
        "rows_rejected = %s, batches = %s, error = %s, unchanged_by = %s WHERE id = %s",
        RUNS_TABLE,
        [status, rows_in, rows_written, rows_rejected, batches, error, unchanged_by, row_id],
    )


def rows_if_exists(cursor, table, statement, params=None) -> list:
    """Rows of a query over one of our tables (`{}` stands for it); [] while the table does not exist."""
    if not relation_exists(cursor, table):
        return []
    _execute(cursor, statement, table, params)
    return cursor.fetchall()


def _read_runs(database, statement) -> list:
    """Rows of a query over etl_runs (`{}` stands for the table); [] before any run was recorded."""
    connection = database.connect()
    try:
        with connection, connection.cursor() as cursor:
            return rows_if_exists(cursor, RUNS_TABLE, statement)
    finally:
        connection.close()


# Which run of each dataset `runs_of` reads: its latest, or its last complete job (one that failed, or whose load
# applied at least one batch or was skipped as unchanged; a phase run alone by its script, or a load that found
# nothing, completes nothing). `to_jsonb(runs)` reads `unchanged_by` also from a table made before it.
RUN_CHOICES = {
    "latest": "",
    "complete": "WHERE status = 'failed' OR (phase = 'load' AND status = 'succeeded' AND (coalesce(batches, 1) > 0 "
    "OR to_jsonb(runs) ->> 'unchanged_by' IS NOT NULL))",
}


def runs_of(cursor, which="latest") -> list:
    """Every phase of each dataset's chosen run (`RUN_CHOICES`): (dataset, run_id, phase, status, started_at,
    finished_at, rows_in, rows_written, rows_rejected, error, pid, host, trigger, unchanged_by), oldest phase
    first."""
    statement = f"""WITH chosen AS (
           SELECT DISTINCT ON (dataset) dataset, run_id FROM {{0}} AS runs {RUN_CHOICES[which]}
           ORDER BY dataset, started_at DESC, id DESC)
       SELECT r.dataset, r.run_id, r.phase, r.status, r.started_at, r.finished_at, r.rows_in,
              r.rows_written, r.rows_rejected, r.error, r.pid, r.host, r.trigger, to_jsonb(r) ->> 'unchanged_by'
       FROM {{0}} r JOIN chosen USING (dataset, run_id) ORDER BY r.started_at, r.id"""
    return rows_if_exists(cursor, RUNS_TABLE, statement)


def last_changes(cursor) -> dict:
    """(dataset, table) -> (batch_id, loaded_at, rows_inserted, rows_updated) of the last batch that changed values.

    A batch changed values when the table's fingerprint after it differs from the one after the batch before
    (so a replace that rewrote the same values did not); the first batch still in the ledger, one recorded
    by a version without fingerprints, and one before or after which the state lists transactions
    (`load.table_state`: a first load, a merge, an append) changed values when it inserted or updated rows
    and held other content than the batch before (one with the same content only repaired a hand edit).
    """
    statement = """SELECT DISTINCT ON (dataset, table_name) dataset, table_name, batch_id, loaded_at,
              rows_inserted, rows_updated
       FROM (SELECT *, lag(table_fingerprint) OVER w AS fingerprint_before, lag(table_rows) OVER w AS rows_before,
                    lag(content_hash) OVER w AS content_before
             FROM {} WINDOW w AS (PARTITION BY dataset, table_name ORDER BY loaded_at, batch_id)) AS batches
       WHERE CASE WHEN table_fingerprint IS NULL OR fingerprint_before IS NULL
                       OR starts_with(table_fingerprint, 'xmin:') OR starts_with(fingerprint_before, 'xmin:')
                  THEN rows_inserted + rows_updated > 0 AND content_hash IS DISTINCT FROM content_before
                  ELSE (table_rows, table_fingerprint) IS DISTINCT FROM (rows_before, fingerprint_before) END
       ORDER BY dataset, table_name, loaded_at DESC, batch_id DESC"""
    return {(row[0], row[1]): row[2:] for row in rows_if_exists(cursor, LEDGER_TABLE, statement)}


def last_successful_loads(database) -> dict:
    """dataset -> finish time of its last successful load."""
    statement = (
        "SELECT dataset, max(finished_at) FROM {} WHERE phase = 'load' AND status = 'succeeded' GROUP BY dataset"
    )
    return dict(_read_runs(database, statement))
