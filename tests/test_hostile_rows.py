"""Rows and fields PostgreSQL cannot hold as they are: one bad row never blocks a dataset.

Each case serves generated GHO rows with one hostile part through the
stand-in, runs the scheduler's job as a user would, and checks the table,
the rejects file and that the next change still arrives.
"""

import json
import random
import string

import psycopg2

from tests.helpers import run_script, write_dataset_config
from utils.gho_samples import generate_rows

INDICATOR = "GEN_H"


def _env(script_env, tmp_path):
    config = write_dataset_config(tmp_path, {"hostile": {"indicator": INDICATOR}})
    return dict(script_env, DATASET_CONFIG_FILE=str(config))


def _query(url, text):
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(text)
        return cursor.fetchall()


def _rejects(tmp_path) -> list:
    lines = []
    for path in (tmp_path / "data" / "rejects" / "hostile").glob("*.jsonl"):
        lines += [json.loads(line) for line in path.read_text().splitlines()]
    return lines


def test_a_key_too_long_for_the_index_is_rejected_and_the_rest_keeps_arriving(script_env, tmp_path, stub, database_url):
    rows = generate_rows(INDICATOR, 100)
    rows[7]["SpatialDim"] = "".join(random.Random(1).choices(string.ascii_letters + string.digits, k=6000))
    stub.set_rows(INDICATOR, rows)
    env = _env(script_env, tmp_path)
    run_script("start_scheduler.py", "--once", env=env, check=0)
    assert _query(database_url, "SELECT count(*) FROM hostile") == [(99,)]
    [reject] = _rejects(tmp_path)
    assert reject["record"]["Id"] == 8 and "natural key is 6" in reject["reason"] and "unique index" in reject["reason"]
    rows[20]["NumericValue"] = 99.25  # a real change elsewhere still arrives
    stub.set_rows(INDICATOR, rows)
    run_script("start_scheduler.py", "--once", env=env, check=0)
    assert _query(database_url, "SELECT numeric_value FROM hostile WHERE id = 21") == [(99.25,)]
    assert not list((tmp_path / "data" / "staging" / "hostile").iterdir()), "no staging file may pile up"


def test_fields_named_like_system_columns_get_safe_columns(script_env, tmp_path, stub, database_url):
    rows = generate_rows(INDICATOR, 30)
    for row in rows:
        row.update(xmin="a", ctid="b", tableoid="c", Oid="d")
    stub.set_rows(INDICATOR, rows)
    run_script("start_scheduler.py", "--once", env=_env(script_env, tmp_path), check=0)
    found = _query(database_url, "SELECT f_xmin, f_ctid, f_tableoid, f_oid, count(*) FROM hostile GROUP BY 1, 2, 3, 4")
    assert found == [("a", "b", "c", "d", 30)]


def test_more_fields_than_a_table_may_gain_is_one_clear_error(script_env, tmp_path, stub, database_url):
    rows = generate_rows(INDICATOR, 10)
    rows[3].update({f"Junk{n:04d}": "x" for n in range(1700)})
    stub.set_rows(INDICATOR, rows)
    result = run_script("start_scheduler.py", "--once", env=_env(script_env, tmp_path))
    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "1700 fields outside the GHO core (Junk0000, Junk0001" in error[0]
    assert "at most 200 columns" in error[0]
