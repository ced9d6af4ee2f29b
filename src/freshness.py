"""How fresh each dataset is, for `status.py`: its last complete job, what waits, its rows, when its values changed.

- The **last job** is the dataset's latest run that completed (`ledger.RUN_CHOICES`):
  it failed, or its load applied a batch. Its outcome is "failed", "unchanged"
  (the load had nothing to write) or "succeeded". A run that stopped after
  extract or transform completed nothing: its batch is shown **waiting** in
  landing or staging instead, and the run itself reads "incomplete".
- **Rows** are counted (`count(*)`, about 70 ms per million rows); a count
  slower than COUNT_TIMEOUT_MS, waiting on a lock longer than LOCK_TIMEOUT_MS
  or refused gives way to PostgreSQL's estimate (`pg_class.reltuples`), said
  as such, so status never hangs on a big or locked table.
- **Last changed** is when the last batch that changed values was applied
  (`ledger.last_changes`); when the ledger no longer holds it (pruned after
  GHO_HISTORY_DAYS), the newest `_loaded_at` in the table, which that batch wrote.

Only reads: nothing here creates or changes anything in the database.
"""

import socket

import psycopg2
from psycopg2 import sql

from src.contracts import landing, ledger, schema, staging

COUNT_TIMEOUT_MS = 5000
LOCK_TIMEOUT_MS = 1000
TABLE_UNKNOWN = {"rows": None, "rows_estimated": False, "last_changed": None, "last_changed_by": None}
NOTHING_KNOWN = {"last_run": None, "last_job": None, **TABLE_UNKNOWN}


def waiting(store, dataset: str) -> dict:
    """Batch ids, oldest first: complete in landing (transform next), in staging (load next), incomplete in landing."""
    ids = landing.batch_ids(store, dataset)
    complete = [b for b in ids if landing.is_complete(store, dataset, b)]
    return {
        "landing": complete,
        "staging": staging.batch_ids(store, dataset),
        "landing_incomplete": [b for b in ids if b not in complete],
    }


def read(database, datasets) -> dict:
    """dataset name -> NOTHING_KNOWN's keys, read from the database; raises when it cannot be reached."""
    connection = database.connect()
    try:
        connection.autocommit = True  # each statement its own snapshot; no transaction held open
        with connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {COUNT_TIMEOUT_MS}; SET lock_timeout = {LOCK_TIMEOUT_MS}")
            latest = summarize_runs(ledger.runs_of(cursor, "latest"))
            complete = summarize_runs(ledger.runs_of(cursor, "complete"))
            changes = ledger.last_changes(cursor)
            found = {}
            for dataset in datasets:
                found[dataset.name] = {
                    "last_run": latest.get(dataset.name),
                    "last_job": job_of(complete.get(dataset.name)),
                    **_table_facts(cursor, dataset.table, changes.get((dataset.name, dataset.table))),
                }
            return found
    finally:
        connection.close()


def summarize_runs(rows) -> dict:
    """dataset -> its run (`ledger.runs_of` rows), each phase's figures and the run's outcome.

    A phase still 'running' whose process is gone from this host is "abandoned". The outcome is the worst
    phase's, else "succeeded" when the run loaded, else "incomplete" (extract or transform only).
    """
    import psutil

    host = socket.gethostname()
    runs = {}
    for (
        dataset,
        run_id,
        phase,
        status,
        started,
        finished,
        rows_in,
        written,
        rejected,
        error,
        pid,
        run_host,
        trigger,
        unchanged_by,
    ) in rows:
        if status == "running" and run_host == host and not psutil.pid_exists(pid):
            status = "abandoned"
        run = runs.setdefault(
            dataset,
            {"run_id": run_id, "trigger": trigger, "started_at": started, "finished_at": None, "phases": {}},
        )
        run["phases"][phase] = {
            "status": status,
            "rows_in": rows_in,
            "rows_written": written,
            "rows_rejected": rejected,
            "error": error,
            "unchanged_by": unchanged_by,
        }
        run["finished_at"] = finished
    for run in runs.values():
        statuses = [p["status"] for p in run["phases"].values()]
        done = "succeeded" if "load" in run["phases"] else "incomplete"
        run["outcome"] = next((s for s in ("failed", "abandoned", "running") if s in statuses), done)
        run["duration_s"] = (
            round((run["finished_at"] - run["started_at"]).total_seconds(), 1) if run["finished_at"] else None
        )
        load = run["phases"].get("load")
        run["rows_loaded"] = load["rows_written"] if load else None
        run["rows_staged"] = load["rows_in"] if load else None
    return runs


def job_of(run):
    """A complete run as a job: outcome "failed", "unchanged" (nothing to write) or "succeeded", and its figures."""
    if run is None:
        return None
    phases = run["phases"]
    failed = next((name for name, phase in phases.items() if phase["status"] == "failed"), None)
    load = phases.get("load") if failed is None else None
    if failed:
        outcome = "failed"
    else:
        outcome = "unchanged" if not load["rows_written"] else "succeeded"
    job = {key: run[key] for key in ("run_id", "trigger", "started_at", "finished_at", "duration_s")}
    job.update(
        outcome=outcome,
        rows_written=load["rows_written"] if load else None,
        rows_checked=load["rows_in"] if load else None,
        rows_rejected=sum(phase["rows_rejected"] or 0 for phase in phases.values()),
        error=phases[failed]["error"] if failed else None,
        failed_phase=failed,
        unchanged_by=load.get("unchanged_by") if load and outcome == "unchanged" else None,
    )
    return job


def _table_facts(cursor, table, change) -> dict:
    """rows, rows_estimated, last_changed and last_changed_by of one table (`change`: `ledger.last_changes`)."""
    where = cursor.connection.schema
    name = sql.Identifier(where, table)
    cursor.execute("SELECT to_regclass(%s)::oid", [name.as_string(cursor)])
    oid = cursor.fetchone()[0]
    facts = dict(TABLE_UNKNOWN)
    if oid is None:
        return facts
    try:
        cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(name))
        facts["rows"] = cursor.fetchone()[0]
    except psycopg2.Error:  # slower than COUNT_TIMEOUT_MS, locked past LOCK_TIMEOUT_MS, or refused
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s", [oid])
        estimate = cursor.fetchone()[0]
        facts.update(rows=estimate if estimate >= 0 else None, rows_estimated=True)
    if change is not None:
        batch_id, loaded_at, inserted, updated = change
        facts["last_changed"] = loaded_at
        facts["last_changed_by"] = {"batch_id": batch_id, "rows_inserted": inserted, "rows_updated": updated}
    elif facts["rows"] and not facts["rows_estimated"]:
        facts["last_changed"] = _newest_loaded_at(cursor, name)
    return facts


def _newest_loaded_at(cursor, name):
    """The newest `_loaded_at` of a table (every load writes it on the rows it inserts or updates), or None."""
    try:
        cursor.execute(sql.SQL("SELECT max({}) FROM {}").format(sql.Identifier(schema.LOADED_AT_COLUMN), name))
        return cursor.fetchone()[0]
    except psycopg2.Error:  # a table without the column (made by hand), or too slow: not known
        return None
