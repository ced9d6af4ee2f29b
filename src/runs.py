"""Run history: one row in `etl_runs` per run of a phase, whoever started it.

A run is recorded as 'running' when it starts and finished with its outcome,
each in its own short transaction, so history survives a failed load. A run
whose process died keeps 'running'; readers tell it apart by its pid and host.
History is a convenience, never a reason to fail: if the database cannot be
reached the phase still runs and a warning is logged.
"""

import logging
import os
import socket
import threading
import uuid

from psycopg2 import sql

log = logging.getLogger("gho_etl.runs")

RUNS_TABLE = "etl_runs"


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def ensure_runs_table(connection) -> None:
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('gho-etl:ddl'))")
        cursor.execute(sql.SQL("""CREATE TABLE IF NOT EXISTS {} (
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
                    trigger text)""").format(sql.Identifier(RUNS_TABLE)))
        cursor.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS etl_runs_dataset_started ON {} (dataset, started_at DESC)").format(
                sql.Identifier(RUNS_TABLE)
            )
        )


class RunHistory:
    """Records phase runs; degrades to a no-op (with one warning) when the database is away."""

    def __init__(self, database, trigger="manual"):
        self.database = database
        self.trigger = trigger
        self._connection = None
        self._disabled = False
        # The scheduler records runs from several job threads over one connection.
        self._lock = threading.RLock()

    def _cursor_connection(self):
        if self._disabled:
            return None
        if self._connection is None or self._connection.closed:
            try:
                self._connection = self.database.connect()
                ensure_runs_table(self._connection)
            except Exception as exc:  # history must never break a run
                log.warning("run history unavailable (%s); continuing without it", exc)
                self._disabled = True
                return None
        return self._connection

    def start(self, run_id, dataset, phase) -> int:
        with self._lock:
            return self._start(run_id, dataset, phase)

    def _start(self, run_id, dataset, phase):
        connection = self._cursor_connection()
        if connection is None:
            return None
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(
                    sql.SQL(
                        "INSERT INTO {} (run_id, dataset, phase, status, pid, host, trigger) "
                        "VALUES (%s, %s, %s, 'running', %s, %s, %s) RETURNING id"
                    ).format(sql.Identifier(RUNS_TABLE)),
                    [run_id, dataset, phase, os.getpid(), socket.gethostname(), self.trigger],
                )
                return cursor.fetchone()[0]
        except Exception as exc:
            log.warning("could not record the start of %s %s: %s", phase, dataset, exc)
            self._reset()
            return None

    def finish(self, row_id, status, **outcome):
        with self._lock:
            self._finish(row_id, status, **outcome)

    def _finish(self, row_id, status, rows_in=None, rows_written=None, rows_rejected=None, batches=None, error=None):
        if row_id is None:
            return
        connection = self._cursor_connection()
        if connection is None:
            return
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(
                    sql.SQL(
                        "UPDATE {} SET status = %s, finished_at = now(), rows_in = %s, rows_written = %s, "
                        "rows_rejected = %s, batches = %s, error = %s WHERE id = %s"
                    ).format(sql.Identifier(RUNS_TABLE)),
                    [status, rows_in, rows_written, rows_rejected, batches, error, row_id],
                )
        except Exception as exc:
            log.warning("could not record the end of run %s: %s", row_id, exc)
            self._reset()

    def _reset(self):
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                pass
        self._connection = None

    def close(self):
        with self._lock:
            self._reset()


def read_history(database, statement) -> list:
    """Rows of a query over etl_runs (`{}` stands for the table); [] before any run was recorded."""
    connection = database.connect()
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s)", [RUNS_TABLE])
            if cursor.fetchone()[0] is None:
                return []
            cursor.execute(sql.SQL(statement).format(sql.Identifier(RUNS_TABLE)))
            return cursor.fetchall()
    finally:
        connection.close()
