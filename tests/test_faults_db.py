"""The database misbehaving: down, connection lost mid-transaction, concurrent loads, tables changed by hand."""

import shutil
import subprocess
import sys
import time

import psycopg2
import pytest

from src.contracts.layout import Layout
from tests.helpers import PROJECT_ROOT, run_script, write_dataset_config
from tests.pipeline_checks import batches_not_in_ledger, duplicate_keys, leftovers, scalar, table_checksum
from utils.gho_samples import generate_rows
from src.load.tables import index_name

DATASET = "life_expectancy_at_birth"
INDICATOR = "WHOSIS_000001"
ROWS = 900


def _staged(data_dir):
    return sorted(Layout(data_dir).staging(DATASET).glob("*.parquet"))


def _stage(env, stub, rows):
    stub.set_rows(INDICATOR, rows)
    run_script("start_extract.py", env=env, check=0)
    run_script("start_transform.py", env=env, check=0)


def _changed(rows):
    changed = [dict(r) for r in rows]
    for row in changed[::5]:
        row["NumericValue"] += 1
    return changed


def _start_load(env):
    return subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "start_load.py")],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_blocked_loads(db, count, timeout=60):
    """Wait until `count` pipeline connections are waiting on a lock; return their backend pids."""
    deadline = time.monotonic() + timeout
    while True:
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'gho-etl' AND wait_event_type = 'Lock'"
            )
            pids = [pid for (pid,) in cursor.fetchall()]
        if len(pids) >= count:
            return pids
        assert time.monotonic() < deadline, f"{count} load(s) never blocked on the lock"
        time.sleep(0.05)


def _load_killed_mid_merge(env, database_url, db):
    """Run start_load.py and terminate its backend inside the load transaction, after its COPY.

    A SHARE lock on the target lets the load create its temp table and COPY
    into it, then blocks its write to the target: the transaction is open with
    work done. Returns (exit code, stderr, the query it was blocked in).
    """
    holder = psycopg2.connect(database_url)
    with holder.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {DATASET} IN SHARE MODE")
    process = _start_load(env)
    try:
        [pid] = _wait_for_blocked_loads(db, 1)
        with db.cursor() as cursor:
            cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])
            query = cursor.fetchone()[0]
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        _, stderr = process.communicate(timeout=60)
    finally:
        holder.rollback()
        holder.close()
    return process.returncode, stderr, query


def _lock_dataset(db):
    with db.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", [f"gho-etl:{DATASET}"])


def _unlock_dataset(db):
    with db.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [f"gho-etl:{DATASET}"])


def test_database_down_keeps_staging_and_the_next_run_loads_it(script_env, stub, database_url, tmp_path):
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, ROWS))
    down = dict(script_env, DATABASE_URL="postgresql://etl@127.0.0.1:9/gho")
    run_script("start_extract.py", env=down, check=0)
    run_script("start_transform.py", env=down, check=0)
    staged = _staged(tmp_path / "data")
    failed = run_script("start_load.py", env=down)
    assert failed.returncode == 1 and "cannot connect to postgresql://etl@127.0.0.1:9/gho" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert _staged(tmp_path / "data") == staged

    run_script("start_load.py", env=script_env, check=0)
    assert scalar(database_url, f"SELECT count(*) FROM {DATASET}") == ROWS
    assert leftovers(tmp_path / "data") == []


def test_connection_lost_mid_transaction_rolls_back_and_keeps_staging(script_env, stub, database_url, db, tmp_path):
    rows = generate_rows(INDICATOR, ROWS)
    _stage(script_env, stub, rows)
    run_script("start_load.py", env=script_env, check=0)
    before = table_checksum(database_url, DATASET)
    _stage(script_env, stub, _changed(rows))
    staged = _staged(tmp_path / "data")

    returncode, stderr, query = _load_killed_mid_merge(script_env, database_url, db)
    assert f'INSERT INTO "public"."{DATASET}"' in query  # it was inside the merge
    assert returncode == 1
    assert f"error: load {DATASET}: FAILED" in stderr and "lost the database while loading" in stderr
    assert "the transaction was rolled back and staging kept" in stderr and "Traceback" not in stderr
    assert table_checksum(database_url, DATASET) == before
    assert scalar(database_url, "SELECT count(*) FROM etl_batches") == 1
    assert _staged(tmp_path / "data") == staged

    run_script("start_load.py", env=script_env, check=0)
    assert table_checksum(database_url, DATASET) != before
    assert scalar(database_url, f"SELECT count(*) FROM {DATASET} WHERE numeric_value IS NOT NULL") == ROWS
    assert scalar(database_url, "SELECT count(*) FROM etl_batches") == 2
    assert leftovers(tmp_path / "data") == []


def test_second_load_of_the_same_data_directory_says_already_running(script_env, stub, database_url, db, tmp_path):
    _stage(script_env, stub, generate_rows(INDICATOR, ROWS))
    _lock_dataset(db)
    first = _start_load(script_env)
    try:
        _wait_for_blocked_loads(db, 1)
        second = run_script("start_load.py", env=script_env)
        scheduler = run_script("start_scheduler.py", "--once", env=script_env)
    finally:
        _unlock_dataset(db)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 0, stderr
    assert second.returncode == 3
    assert second.stderr.strip().endswith(f"load of {DATASET} is already running in another process")
    # The scheduler's own extract and transform ran; its load met the running one.
    assert "already running" in scheduler.stderr
    assert scalar(database_url, f"SELECT count(*) FROM {DATASET}") == ROWS
    assert duplicate_keys(database_url, DATASET) == 0
    assert batches_not_in_ledger(database_url, DATASET, DATASET) == 0


def test_same_batch_from_two_machines_is_applied_once(script_env, stub, database_url, db, tmp_path):
    """Two data directories hold the same staging batch (a restored backup, a copied folder)."""
    _stage(script_env, stub, generate_rows(INDICATOR, ROWS))
    [batch] = _staged(tmp_path / "data")
    other = dict(script_env, GHO_DATA_DIR=str(tmp_path / "other"), GHO_LOG_DIR=str(tmp_path / "other-logs"))
    Layout(tmp_path / "other").staging(DATASET).mkdir(parents=True)
    shutil.copy(batch, Layout(tmp_path / "other").staging(DATASET) / batch.name)

    _lock_dataset(db)
    try:
        loads = [_start_load(script_env), _start_load(other)]
        _wait_for_blocked_loads(db, 2)
    finally:
        _unlock_dataset(db)
    results = [load.communicate(timeout=60) for load in loads]
    assert [load.returncode for load in loads] == [0, 0], results
    outputs = sorted(stdout for stdout, _ in results)
    assert outputs[0].startswith(f"load {DATASET}: 0 rows written of {ROWS} staged")
    assert outputs[1].startswith(f"load {DATASET}: {ROWS} rows written of {ROWS} staged")
    assert scalar(database_url, "SELECT count(*) FROM etl_batches") == 1
    assert scalar(database_url, f"SELECT count(*) FROM {DATASET}") == ROWS
    assert _staged(tmp_path / "data") == _staged(tmp_path / "other") == []


def _load_after_hand_changes(env, stub, db, *statements):
    """Load a batch, run `statements` on the table as a user might, then load changed data."""
    rows = generate_rows(INDICATOR, ROWS)
    _stage(env, stub, rows)
    run_script("start_load.py", env=env, check=0)
    with db.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    _stage(env, stub, _changed(rows))
    return run_script("start_load.py", env=env)


def test_unique_index_dropped_and_duplicate_added_by_hand_is_a_clear_error(script_env, stub, database_url, db):
    result = _load_after_hand_changes(
        script_env,
        stub,
        db,
        f"DROP INDEX {index_name(DATASET)}",
        f"INSERT INTO {DATASET} SELECT * FROM {DATASET} LIMIT 1",
    )
    assert result.returncode == 1
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "could not create unique index" in error and error.endswith("staging kept")
    assert scalar(database_url, f"SELECT count(*) FROM {DATASET}") == ROWS + 1  # nothing changed


def test_not_null_added_by_hand_is_a_clear_error(script_env, stub, database_url, db):
    result = _load_after_hand_changes(
        script_env,
        stub,
        db,
        f"UPDATE {DATASET} SET comments = 'checked'",
        f"ALTER TABLE {DATASET} ALTER COLUMN comments SET NOT NULL",
    )
    assert result.returncode == 1
    assert 'null value in column "comments"' in result.stderr and "Traceback" not in result.stderr
    assert scalar(database_url, f"SELECT count(*) FROM {DATASET} WHERE comments = 'checked'") == ROWS


def test_table_dropped_by_hand_is_recreated(script_env, stub, database_url, db):
    rows = generate_rows(INDICATOR, ROWS)
    _stage(script_env, stub, rows)
    run_script("start_load.py", env=script_env, check=0)
    with db.cursor() as cursor:
        cursor.execute(f"DROP TABLE {DATASET} CASCADE")  # CASCADE: its labelled view goes too
    _stage(script_env, stub, rows)
    run_script("start_load.py", env=script_env, check=0)
    assert scalar(database_url, f"SELECT count(*) FROM {DATASET}") == ROWS
    assert scalar(database_url, f"SELECT count(*) FROM {DATASET}_labeled") == ROWS


@pytest.mark.parametrize("mode", ["merge", "append", "replace"])
def test_every_mode_converges_after_a_lost_connection(script_env, stub, database_url, db, tmp_path, mode):
    env = dict(
        script_env,
        DATASET_CONFIG_FILE=str(write_dataset_config(tmp_path, {DATASET: {"indicator": INDICATOR, "mode": mode}})),
    )
    rows = generate_rows(INDICATOR, ROWS)
    _stage(env, stub, rows)
    run_script("start_load.py", env=env, check=0)
    _stage(env, stub, _changed(rows))
    returncode, _, _ = _load_killed_mid_merge(env, database_url, db)
    assert returncode == 1
    run_script("start_load.py", env=env, check=0)
    assert scalar(database_url, f"SELECT count(*) FROM {DATASET}") == ROWS
    assert duplicate_keys(database_url, DATASET) == 0
