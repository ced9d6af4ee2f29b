"""`logs/scheduler.out` holds only what cannot go to the JSON log, and never grows without bound."""

import json
import time

import psycopg2

from tests.helpers import run_script, write_dataset_config
from utils.gho_samples import generate_rows


def _loads(url) -> int:
    try:
        with psycopg2.connect(url) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM etl_runs WHERE phase = 'load' AND status = 'succeeded'")
            return cursor.fetchone()[0]
    except psycopg2.errors.UndefinedTable:
        return 0


def test_the_detached_scheduler_writes_its_log_once_and_its_console_file_stays_bounded(
    script_env, tmp_path, stub, database_url
):
    stub.set_rows("GEN_O", generate_rows("GEN_O", 30))
    config = write_dataset_config(tmp_path, {"often": {"indicator": "GEN_O", "schedule": "every 1 seconds"}})
    env = dict(script_env, DATASET_CONFIG_FILE=str(config))
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "scheduler.out").write_bytes(b"old output\n" * 200_000)  # 2.2 MB from an earlier life
    run_script("start_scheduler.py", env=env, check=0)
    try:
        deadline = time.monotonic() + 30
        while _loads(database_url) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _loads(database_url) >= 2
    finally:
        run_script("stop_scheduler.py", env=env, check=0)
    console = (logs / "scheduler.out").read_text()
    assert "starting job often" not in console and "load often" not in console, console[:2000]
    messages = [json.loads(line)["message"] for line in (logs / "gho_etl.jsonl").read_text().splitlines()]
    assert any(m.startswith("starting job often") for m in messages)
    assert (logs / "scheduler.out").stat().st_size < 1024 * 1024
    assert (logs / "scheduler.out.1").read_bytes().startswith(b"old output")
