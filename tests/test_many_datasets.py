"""Many small datasets in one --once run: the measurement of its per-dataset overhead, and what makes it cheap
(one pooled connection that is replaced when it breaks, one reference check, no DDL for a labelled view that
is already right, aged run history pruned once in a while).

Real PostgreSQL (the session's server, and the measurement's own) and the stand-in over HTTP.
"""

import json

import psycopg2

from src.contracts import reference as reference_tables
from src.db import Database
from src.logs import LOG_FILE_NAME
from src.run_history import RunHistory
from src.runner import Runner
from tests.helpers import run_script, write_dataset_config
from tests.pipeline_checks import scalar
from utils.bench.many_datasets import measure_many_datasets

TWO = {"first": {"indicator": "WHOSIS_000001"}, "second": {"indicator": "WHOSIS_000015"}}
VIEW_CHANGES = "SELECT xmin::text FROM pg_rewrite WHERE ev_class = to_regclass('first_labeled')"


def _terminate_gho_etl_backends(url):
    """End every server process serving gho-etl on this database (as an operator or a restart would)."""
    connection = psycopg2.connect(url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'gho-etl' AND datname = current_database() AND pid <> pg_backend_pid()"
        )
        killed = cursor.fetchone()[0]
    connection.close()
    return killed


def test_the_many_datasets_measurement_runs_end_to_end_at_a_tiny_size(enterable_dir):
    result = measure_many_datasets(enterable_dir / "many", datasets=20, rows=500)
    steps = result["steps"]
    assert set(steps) == {"many_first", "many_unchanged", "one_first", "one_unchanged"}
    assert steps["many_first"]["rows_written"] == steps["one_first"]["rows_written"] == 20 * 500
    assert steps["many_unchanged"]["rows_written"] == steps["one_unchanged"]["rows_written"] == 0
    assert steps["many_first"]["datasets_recorded"] == steps["many_unchanged"]["datasets_recorded"] == 20
    assert all(step["runs_not_succeeded"] == 0 for step in steps.values())
    assert result["checks"]["unchanged_rows_written"]["met"] and result["checks"]["datasets_recorded"]["met"]
    assert {"per_dataset_overhead_ms_first", "per_dataset_overhead_ms_unchanged"} <= set(result["checks"])
    assert set(result["per_dataset_overhead_ms"]["first"]) >= {"seconds", "log_span_seconds", "extract", "load"}


def test_a_connection_broken_between_two_datasets_of_a_once_run_is_replaced(make_settings, database_url):
    settings = make_settings(TWO)
    database = Database(settings)
    runner = Runner(settings, database)
    first, second = settings.datasets.values()
    with database.pooled():
        assert all(outcome.ok for outcome in runner.run_job(first))
        assert _terminate_gho_etl_backends(database_url) >= 1  # the pooled connection, idle between datasets
        outcomes = runner.run_job(second)
    assert [o.phase for o in outcomes] == ["extract", "transform", "load"] and all(o.ok for o in outcomes)
    assert scalar(database_url, "SELECT count(*) FROM second") == outcomes[-1].rows_written > 0
    assert scalar(database_url, "SELECT count(*) FROM etl_batches") == 2


def test_a_pooled_connection_left_in_a_transaction_is_never_handed_out_again(make_settings):
    database = Database(make_settings(TWO))
    with database.pooled():
        with database.connection() as connection:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")  # a transaction left open
            left_open = connection.info.backend_pid
        with database.connection() as connection:
            assert connection.info.backend_pid != left_open
            clean = connection.info.backend_pid
        with database.connection() as connection:
            assert connection.info.backend_pid == clean  # an idle one is reused
    assert connection.closed  # and closed when pooling ends


def test_a_once_run_checks_the_reference_once_after_every_job(tmp_path, script_env, stub, database_url):
    env = {**script_env, "GHO_REFERENCE_HOURS": "24", "DATASET_CONFIG_FILE": str(write_dataset_config(tmp_path, TWO))}
    run_script("start_scheduler.py", "--once", env=env, check=0)
    catalogue = [r for r in stub.state.request_log() if r["path"].rstrip("/").endswith("/Indicator")]
    assert len(catalogue) == 1
    records = [json.loads(line) for line in (tmp_path / "logs" / LOG_FILE_NAME).read_text().splitlines()]
    phases = [r.get("phase") for r in records if r.get("phase") in ("load", "reference")]
    assert phases[-1] == "reference" and set(phases[: phases.index("reference")]) == {"load"}
    assert sum(1 for r in records if r["message"].startswith("reference: ")) == 1
    seen = scalar(
        database_url,
        f"SELECT array_agg(resource ORDER BY resource) FROM {reference_tables.STATE_TABLE} WHERE resource LIKE %s",
        [reference_tables.DATASET_PREFIX + "%"],
    )
    assert seen == [reference_tables.DATASET_PREFIX + name for name in ("first", "second")]


def test_a_labelled_view_already_right_is_not_made_again_and_one_replaced_by_hand_is(make_settings, database_url, db):
    settings = make_settings({"first": {"indicator": "WHOSIS_000001"}})
    runner = Runner(settings, Database(settings))
    dataset = settings.datasets["first"]
    assert all(o.ok for o in runner.run_job(dataset))
    made = scalar(database_url, VIEW_CHANGES)
    with db.cursor() as cursor:  # a batch that writes rows, so the load runs to its end
        cursor.execute("DELETE FROM first WHERE ctid IN (SELECT ctid FROM first LIMIT 3)")
    assert all(o.ok for o in runner.run_job(dataset))
    assert scalar(database_url, VIEW_CHANGES) == made
    with db.cursor() as cursor:  # replaced by hand, its comment kept
        cursor.execute("SELECT rtrim(pg_get_viewdef('first_labeled'::regclass), '; ')")
        cursor.execute(f"CREATE OR REPLACE VIEW first_labeled AS {cursor.fetchone()[0]} LIMIT 0")
        cursor.execute("DELETE FROM first WHERE ctid IN (SELECT ctid FROM first LIMIT 3)")
    assert scalar(database_url, "SELECT count(*) FROM first_labeled") == 0
    assert all(o.ok for o in runner.run_job(dataset))
    assert scalar(database_url, "SELECT count(*) FROM first_labeled") == scalar(
        database_url, "SELECT count(*) FROM first"
    )


def test_aged_run_history_is_pruned_at_the_first_start_then_at_most_every_few_minutes(make_settings, database_url, db):
    settings = make_settings(TWO, history_days=1)
    history = RunHistory(Database(settings))
    history.finish(history.start("r1", "first", "extract"), "succeeded")
    old = (
        "INSERT INTO etl_runs (run_id, dataset, phase, status, started_at) VALUES ('old', 'gone', 'load', "
        "'succeeded', now() - interval '2 days')"
    )
    with db.cursor() as cursor:
        cursor.execute(old)
    history.finish(history.start("r1", "first", "transform"), "succeeded")
    assert scalar(database_url, "SELECT count(*) FROM etl_runs WHERE run_id = 'old'") == 1
    history.close()
    fresh = RunHistory(Database(settings))  # a new run (process) prunes at its first start
    fresh.finish(fresh.start("r2", "first", "extract"), "succeeded")
    fresh.close()
    assert scalar(database_url, "SELECT count(*) FROM etl_runs WHERE run_id = 'old'") == 0
    assert scalar(database_url, "SELECT count(*) FROM etl_runs WHERE dataset = 'first'") == 3


def test_a_datasets_history_is_pruned_once_a_job_and_never_holds_more_than_the_runs_kept(make_settings, database_url):
    history = RunHistory(Database(make_settings(TWO, history_runs=10)))
    counts = []
    for job in range(6):
        phases = ["extract", "extract", "transform", "load"] if job == 3 else ["extract", "transform", "load"]
        for phase in phases:  # job 3 downloads again in full: four rows
            history.finish(history.start(f"run{job}", "first", phase), "succeeded")
            counts.append(scalar(database_url, "SELECT count(*) FROM etl_runs WHERE dataset = 'first'"))
    history.close()
    assert max(counts) == counts[-1] == 10
    newest = scalar(database_url, "SELECT array_agg(run_id ORDER BY id DESC) FROM etl_runs WHERE dataset = 'first'")
    assert newest[:3] == ["run5"] * 3


def test_a_ledger_of_an_earlier_version_still_gains_its_columns_and_a_current_one_takes_no_ddl_lock(
    make_settings, database_url, db, monkeypatch
):
    with db.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE etl_batches (dataset text NOT NULL, batch_id text NOT NULL, table_name text NOT NULL, "
            "mode text NOT NULL, rows_staged bigint NOT NULL, rows_inserted bigint NOT NULL, rows_updated bigint "
            "NOT NULL, loaded_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (dataset, batch_id))"
        )
    settings = make_settings({"first": {"indicator": "WHOSIS_000001"}})
    runner = Runner(settings, Database(settings))
    assert all(o.ok for o in runner.run_job(settings.datasets["first"]))
    assert scalar(database_url, "SELECT count(*) FROM etl_batches WHERE content_hash IS NOT NULL") == 1
    with db.cursor() as cursor:
        cursor.execute("DELETE FROM first WHERE ctid IN (SELECT ctid FROM first LIMIT 3)")
    # Another session holds our DDL lock: a load that wanted it would give up after lock_timeout.
    monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=3000")
    db.autocommit = False
    with db.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('gho-etl:ddl'))")
        outcomes = runner.run_job(settings.datasets["first"])
    db.rollback()
    assert [o.ok for o in outcomes] == [True] * 3 and outcomes[-1].rows_written == 3
