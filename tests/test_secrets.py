"""Secrets never leave the process: not on a terminal, in the log, in etl_runs, in status.py or in a file we write.

Each case runs the scripts as a user would, with a password that must not
appear anywhere afterwards, whatever shape the setting holding it has.
"""

import json

import psycopg2
import pytest

from tests.helpers import run_script

SECRET = "Xq7s3cretZ"


def _everything_written(tmp_path) -> str:
    """Every file the pipeline wrote under the test's data and log folders, as one text."""
    texts = []
    for root in (tmp_path / "data", tmp_path / "logs"):
        for path in root.rglob("*"):
            if path.is_file() and "postgres" not in path.relative_to(root).parts:
                texts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(texts)


@pytest.mark.parametrize(
    "database_url",
    [
        f"postgresql://etl:{SECRET}@[::1:5432/gho",  # a missing ]: the URL does not parse
        f"postgresql://etl:{SECRET}%zz@127.0.0.1:9/gho",  # a bad %-escape in the password
        f"postgresql://etl:{SECRET}@127.0.0.1:9/gho?sslmode=nonsense",  # parses; libpq refuses it
        f"host=127.0.0.1 port=9 user=etl password={SECRET} dbname=gho",  # a libpq keyword string
    ],
    ids=["missing-bracket", "bad-escape", "bad-option", "keywords"],
)
def test_a_mistyped_database_url_never_shows_its_password(script_env, tmp_path, database_url):
    env = dict(script_env, DATABASE_URL=database_url)
    commands = [("start_load.py",), ("status.py",), ("start_scheduler.py", "--once"), ("tests/test_c_psql.py",)]
    results = [run_script(*command, env=env) for command in commands]  # --once: a detached one would outlive us
    results.append(run_script("status.py", "--json", env=env))
    for result in results:
        assert SECRET not in result.stdout + result.stderr
    assert SECRET not in _everything_written(tmp_path)


def test_credentials_in_the_api_url_reach_no_output_file_or_table(script_env, tmp_path, stub, database_url):
    credentialed = stub.base_url.replace("http://", f"http://reader:{SECRET}@", 1)
    env = dict(script_env, GHO_API_BASE_URL=credentialed)
    extracted = run_script("start_extract.py", env=env, check=0)
    (landing,) = (tmp_path / "data" / "landing" / "life_expectancy_at_birth").iterdir()
    assert json.loads((landing / "manifest.json").read_text())["rows"] > 0
    stub.add_fault("status", status=404, times=100)
    failed = run_script("start_extract.py", env=env)
    assert failed.returncode == 1
    status = [run_script("status.py", env=env, check=0), run_script("status.py", "--json", env=env, check=0)]
    for result in [extracted, failed, *status]:
        assert SECRET not in result.stdout + result.stderr
    assert SECRET not in _everything_written(tmp_path)
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*), string_agg(coalesce(error, ''), ' ') FROM etl_runs")
        runs, errors = cursor.fetchone()
    assert runs == 2 and "404" in errors and SECRET not in errors


def test_data_and_logs_are_private_to_the_user(script_env, tmp_path):
    run_script("start_scheduler.py", "--once", env=script_env, check=0)
    run_script("status.py", env=script_env, check=0)
    shared = []
    for root in (tmp_path / "data", tmp_path / "logs"):
        for path in [root, *root.rglob("*")]:
            if "postgres" in path.relative_to(tmp_path).parts:
                continue  # the database's own files: PostgreSQL keeps them 0700/0600 itself
            if path.stat().st_mode & 0o077:
                shared.append(f"{path.relative_to(tmp_path)} {oct(path.stat().st_mode & 0o777)}")
    assert shared == []
    assert (tmp_path / "logs" / "gho_etl.jsonl").exists() and list((tmp_path / "data" / "locks").iterdir())


@pytest.mark.parametrize(
    "database_url",
    [
        f"postgresql://etl:my {SECRET}@[::1:5432/gho",  # a space: no URL pattern stops at the right place
        f"postgresql://etl@[::1/gho?password={SECRET}%zz&sslmode=disable",  # a query parameter
        f'postgresql://etl:p\u00e4{SECRET}"q%zz@127.0.0.1:9/gho',  # JSON would escape it
        f"postgresql://etl@[::1/gho?password={SECRET}",  # a keyword at the end of a JSON string
    ],
    ids=["space", "query-parameter", "escaped-in-json", "keyword-in-json"],
)
def test_secrets_of_any_shape_stay_hidden_and_json_stays_json(script_env, tmp_path, database_url):
    env = dict(script_env, DATABASE_URL=database_url)
    results = [run_script("start_load.py", env=env), run_script("status.py", env=env)]
    shown = run_script("status.py", "--json", env=env, check=0)
    assert json.loads(shown.stdout)["history_error"]
    for result in [*results, shown]:
        assert SECRET not in result.stdout + result.stderr
    for line in (tmp_path / "logs" / "gho_etl.jsonl").read_text().splitlines():
        assert SECRET not in json.loads(line)["message"] + line
    assert SECRET not in _everything_written(tmp_path)


def test_a_password_that_is_a_common_word_does_not_rewrite_other_text():
    from src.redact import redact, remember

    remember("data")
    assert redact('{"datasets": [{"dataset": "a"}], "db": "(default database)"}') == (
        '{"datasets": [{"dataset": "a"}], "db": "(default database)"}'
    )
    assert redact("the password is data") == "the password is ***"
    assert redact("http://127.0.0.1:8080/api/x@y") == "http://127.0.0.1:8080/api/x@y"
    assert redact("postgresql://etl:p@ss/word@host/db") == "postgresql://etl:***@host/db"
