"""What piles up is bounded: run history and ledger past an age or a count are pruned as runs go.

An unchanged dataset at "every 10 seconds" once added a ledger row and three
history rows a run, for ever.
"""

import psycopg2

from tests.helpers import run_script, write_dataset_config
from utils.gho_samples import generate_rows


def _scalar(url, text):
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(text)
        return cursor.fetchone()[0]


def test_unchanged_runs_leave_bounded_history_and_ledger(script_env, tmp_path, stub, database_url):
    stub.set_rows("GEN_T", generate_rows("GEN_T", 40))
    config = write_dataset_config(tmp_path, {"kept": {"indicator": "GEN_T"}})
    env = dict(script_env, DATASET_CONFIG_FILE=str(config), GHO_HISTORY_RUNS="10")
    for _ in range(6):
        run_script("start_scheduler.py", "--once", env=env, check=0)
    assert _scalar(database_url, "SELECT count(*) FROM etl_runs WHERE dataset = 'kept'") == 10
    # skipped batches' rows outlive them an hour (a crashed load elsewhere may still need them); then they go
    assert _scalar(database_url, "SELECT count(*) FROM etl_batches WHERE dataset = 'kept' AND skipped") == 5
    _scalar(database_url, "UPDATE etl_batches SET loaded_at = loaded_at - interval '2 hours' RETURNING 1")
    run_script("start_scheduler.py", "--once", env=env, check=0)
    # the first (applied) batch and the latest (identical, skipped) one: not one a run
    assert _scalar(database_url, "SELECT count(*) FROM etl_batches WHERE dataset = 'kept'") == 2
    assert _scalar(database_url, "SELECT count(*) FROM kept") == 40
    stub.set_rows("GEN_T", generate_rows("GEN_T", 40, vary_every=3))
    run_script("start_scheduler.py", "--once", env=env, check=0)  # a change still arrives
    assert _scalar(database_url, "SELECT count(*) FROM etl_batches WHERE dataset = 'kept' AND NOT skipped") == 2


def test_history_older_than_the_configured_days_is_pruned(script_env, tmp_path, stub, database_url):
    stub.set_rows("GEN_T", generate_rows("GEN_T", 20))
    config = write_dataset_config(tmp_path, {"aged": {"indicator": "GEN_T"}})
    env = dict(script_env, DATASET_CONFIG_FILE=str(config), GHO_HISTORY_DAYS="30")
    run_script("start_scheduler.py", "--once", env=env, check=0)
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute("UPDATE etl_runs SET started_at = started_at - interval '45 days'")
        cursor.execute("UPDATE etl_batches SET loaded_at = loaded_at - interval '45 days'")
    stub.set_rows("GEN_T", generate_rows("GEN_T", 20, vary_every=2))
    run_script("start_scheduler.py", "--once", env=env, check=0)
    assert _scalar(database_url, "SELECT count(*) FROM etl_runs WHERE started_at < now() - interval '30 days'") == 0
    assert _scalar(database_url, "SELECT count(*) FROM etl_batches") == 1  # only the latest batch's row
