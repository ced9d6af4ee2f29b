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
import time
import uuid

from src.contracts import ledger

log = logging.getLogger("gho_etl.runs")

# The rows older than GHO_HISTORY_DAYS (a scan of the whole history) are deleted at the first start a
# RunHistory records and then at most this often, not before every phase of every dataset.
AGED_PRUNE_EVERY_S = 600.0
# A dataset's rows beyond GHO_HISTORY_RUNS are deleted at the first start of a run_id, leaving room for
# the rows a job records (its three phases), not before each phase; a run that records more prunes again.
JOB_ROWS = 3


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


class RunHistory:
    """Records phase runs; degrades to a no-op (with one warning) when the database is away."""

    def __init__(self, database, trigger="manual"):
        self.database = database
        self.trigger = trigger
        self._connection = None
        self._disabled = False
        self._aged_pruned_at = None  # time.monotonic() of the last prune of aged rows
        self._room = {}  # dataset -> (run_id, rows it may still record before its rows are pruned again)
        # The scheduler records runs from several job threads over one connection.
        self._lock = threading.RLock()

    def _live_connection(self):
        if self._disabled:
            return None
        if self._connection is None or self._connection.closed:
            try:
                self._connection = self.database.connect()
                self.database.ensure_schema(self._connection)
                ledger.ensure_runs_table(self._connection)
            except Exception as exc:  # history must never break a run
                log.warning("run history unavailable (%s); continuing without it", exc)
                self._disabled = True
                return None
        return self._connection

    def start(self, run_id, dataset, phase) -> int:
        with self._lock:
            connection = self._live_connection()
            if connection is None:
                return None
            try:
                now = time.monotonic()
                aged = self._aged_pruned_at is None or now - self._aged_pruned_at >= AGED_PRUNE_EVERY_S
                room_run, room = self._room.get(dataset, (None, 0))
                pruned = None if room_run == run_id and room > 0 else dataset
                with connection, connection.cursor() as cursor:
                    pid, host = os.getpid(), socket.gethostname()
                    settings = self.database.settings
                    kept = settings.history_runs - JOB_ROWS
                    ledger.prune_runs(cursor, pruned, settings.history_days, kept, aged)
                    row_id = ledger.insert_run(cursor, run_id, dataset, phase, pid, host, self.trigger)
                if aged:  # once committed
                    self._aged_pruned_at = now
                self._room[dataset] = (run_id, JOB_ROWS - 1 if pruned else room - 1)
                return row_id
            except Exception as exc:
                log.warning("could not record the start of %s %s: %s", phase, dataset, exc)
                self._reset()
                return None

    def finish(
        self, row_id, status, rows_in=None, rows_written=None, rows_rejected=None, batches=None, error=None, **extra
    ):
        with self._lock:
            if row_id is None:
                return
            connection = self._live_connection()
            if connection is None:
                return
            try:
                with connection, connection.cursor() as cursor:
                    ledger.finish_run(
                        cursor, row_id, status, rows_in, rows_written, rows_rejected, batches, error, **extra
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
