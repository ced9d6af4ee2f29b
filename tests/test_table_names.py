"""Table names that pass validation must work, and nothing outside our tables is ever touched.

Run as a user would (the scripts), on generated rows through the stand-in.
"""

import json

import psycopg2
import pytest

from src.contracts.reference import labeled_view_name
from src.load.tables import index_name
from tests.helpers import run_script, write_dataset_config
from utils.gho_samples import generate_rows


def _query(url, text, params=None):
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(text, params)
        return cursor.fetchall()


def _unique_indexes(url, schema, table):
    return _query(
        url,
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s AND indexdef LIKE 'CREATE UNIQUE%%'",
        [schema, table],
    )


def test_two_long_names_sharing_a_prefix_each_get_their_own_unique_index(script_env, tmp_path, stub, database_url):
    first, second = "a" * 55 + "_first_", "a" * 55 + "_second"
    stub.set_rows("GEN_L", generate_rows("GEN_L", 40))
    config = write_dataset_config(
        tmp_path, {"one": {"indicator": "GEN_L", "table": first}, "two": {"indicator": "GEN_L", "table": second}}
    )
    env = dict(script_env, DATASET_CONFIG_FILE=str(config))
    run_script("start_scheduler.py", "--once", env=env, check=0)
    rows = generate_rows("GEN_L", 40, vary_every=4)
    stub.set_rows("GEN_L", rows)
    run_script("start_scheduler.py", "--once", env=env, check=0)  # a merge needs each table's own index
    for table in (first, second):
        assert _unique_indexes(database_url, "public", table) == [(index_name(table),)]
        assert _query(database_url, f"SELECT count(*) FROM {table} WHERE numeric_value = %s", [rows[0]["NumericValue"]])
        assert _query(database_url, f"SELECT count(*) FROM {labeled_view_name(table)}") == [(40,)]  # a view each


@pytest.mark.parametrize(
    "table", ["_gho_stage", "pg_class", "PG_Authid", "etl_runs", "etl_runs_id_seq", "etl_batches_pkey"]
)
def test_names_of_ours_or_the_catalog_are_refused_before_any_work(script_env, tmp_path, table):
    config = write_dataset_config(tmp_path, {"bad": {"indicator": "WHOSIS_000001", "table": table, "mode": "replace"}})
    result = run_script("start_scheduler.py", "--once", env=dict(script_env, DATASET_CONFIG_FILE=str(config)))
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"error: DATASET_CONFIG['bad'].table: {table!r} is reserved")
    assert not (tmp_path / "data").exists()


def test_a_configured_schema_holds_every_table_and_the_search_path_is_never_used(
    script_env, tmp_path, stub, database_url
):
    stub.set_rows("GEN_S", generate_rows("GEN_S", 25))
    _query(database_url, "CREATE SCHEMA decoy; CREATE TABLE decoy.facts (x int); SELECT 1")
    config = write_dataset_config(tmp_path, {"facts": {"indicator": "GEN_S"}})
    decoy_first = database_url + ("&" if "?" in database_url else "?") + "options=-csearch_path%3Ddecoy"
    env = dict(script_env, DATASET_CONFIG_FILE=str(config), DATABASE_URL=decoy_first, GHO_DB_SCHEMA="gho")
    run_script("start_scheduler.py", "--once", env=env, check=0)
    assert _query(database_url, "SELECT count(*) FROM gho.facts") == [(25,)]
    tables = _query(database_url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'gho'")
    ours = ["etl_batches", "etl_runs", "facts", "facts_labeled", "gho_dimension_values", "gho_dimensions"]
    assert sorted(tables) == [(name,) for name in ours + ["gho_indicators", "gho_reference"]]
    decoy = _query(database_url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'decoy'")
    assert decoy == [("facts",)]
    assert _query(database_url, "SELECT count(*) FROM decoy.facts") == [(0,)]  # untouched


def test_an_index_of_an_earlier_version_is_renamed_not_duplicated(script_env, tmp_path, stub, database_url):
    stub.set_rows("GEN_R", generate_rows("GEN_R", 20))
    config = write_dataset_config(tmp_path, {"renamed": {"indicator": "GEN_R"}})
    env = dict(script_env, DATASET_CONFIG_FILE=str(config))
    run_script("start_scheduler.py", "--once", env=env, check=0)
    _query(database_url, f"ALTER INDEX {index_name('renamed')} RENAME TO renamed_natural_key; SELECT 1")
    stub.set_rows("GEN_R", generate_rows("GEN_R", 20, vary_every=2))
    run_script("start_scheduler.py", "--once", env=env, check=0)
    assert _unique_indexes(database_url, "public", "renamed") == [(index_name("renamed"),)]


def test_history_is_read_from_the_configured_schema(script_env, tmp_path, stub, database_url):
    stub.set_rows("GEN_S", generate_rows("GEN_S", 10))
    config = write_dataset_config(tmp_path, {"facts": {"indicator": "GEN_S"}})
    env = dict(script_env, DATASET_CONFIG_FILE=str(config), GHO_DB_SCHEMA="gho")
    run_script("start_scheduler.py", "--once", env=env, check=0)
    shown = json.loads(run_script("status.py", "--json", env=env, check=0).stdout)
    assert shown["history_error"] is None
    assert shown["datasets"][0]["last_run"]["outcome"] == "succeeded"


def test_an_old_and_a_new_index_side_by_side_both_serve(script_env, tmp_path, stub, database_url):
    """An older gho-etl still running makes its own index name again; loads go on working."""
    stub.set_rows("GEN_R", generate_rows("GEN_R", 20))
    config = write_dataset_config(tmp_path, {"twin": {"indicator": "GEN_R"}})
    env = dict(script_env, DATASET_CONFIG_FILE=str(config))
    run_script("start_scheduler.py", "--once", env=env, check=0)
    _query(
        database_url,
        "CREATE UNIQUE INDEX twin_natural_key ON twin (indicator_code, spatial_dim_type, "
        "spatial_dim, time_dim_type, time_dim, dim1, dim2, dim3, data_source_dim) NULLS NOT DISTINCT; SELECT 1",
    )
    stub.set_rows("GEN_R", generate_rows("GEN_R", 20, vary_every=2))
    run_script("start_scheduler.py", "--once", env=env, check=0)


def test_a_schema_name_of_the_system_in_any_case_is_refused(script_env, tmp_path):
    result = run_script("start_extract.py", env=dict(script_env, GHO_DB_SCHEMA="Information_Schema"))
    assert result.returncode == 2 and "GHO_DB_SCHEMA='information_schema' must be a plain identifier" in result.stderr


def test_a_schema_the_role_may_not_create_is_one_clear_line(script_env, tmp_path, stub, database_url):
    stub.set_rows("GEN_S", generate_rows("GEN_S", 10))
    role = "gho_limited_" + tmp_path.name[-8:].replace("-", "_")
    _query(database_url, f"CREATE ROLE {role} LOGIN; SELECT 1")
    try:
        limited = database_url.replace("postgresql://postgres:@", f"postgresql://{role}@", 1)
        config = write_dataset_config(tmp_path, {"facts": {"indicator": "GEN_S"}})
        env = dict(script_env, DATASET_CONFIG_FILE=str(config), DATABASE_URL=limited, GHO_DB_SCHEMA="gho")
        result = run_script("start_scheduler.py", "--once", env=env)
        assert result.returncode == 2
        [line] = [text for text in result.stderr.splitlines() if text.startswith("error:")]
        assert "GHO_DB_SCHEMA='gho' does not exist and could not be made" in line and "permission denied" in line
    finally:
        _query(database_url, f"DROP OWNED BY {role}; DROP ROLE {role}; SELECT 1")
