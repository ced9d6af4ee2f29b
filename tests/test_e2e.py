"""End to end, as a user runs it: the three scripts against the stand-in serving real data."""

import re

import psycopg2
import pytest

from src.contracts.layout import Layout
from tests.helpers import requires_samples, run_script

PHASES = ("extract", "transform", "load")


def _run_pipeline(env):
    return [run_script(f"start_{phase}.py", env=env, check=0) for phase in PHASES]


def _count(url, query="SELECT count(*) FROM life_expectancy_at_birth"):
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(query)
            return cursor.fetchone()[0]
    finally:
        connection.close()


def _distinct_facts(rows):
    keys = (
        "IndicatorCode",
        "SpatialDimType",
        "SpatialDim",
        "TimeDimType",
        "TimeDim",
        "Dim1",
        "Dim2",
        "Dim3",
        "DataSourceDim",
    )
    return len({tuple(row.get(k) for k in keys) for row in rows})


def _phase_dirs_empty(tmp_path):
    layout = Layout(tmp_path / "data")
    name = "life_expectancy_at_birth"
    return not any(layout.landing(name).iterdir()) and not any(layout.staging(name).iterdir())


@requires_samples
def test_real_whosis_000001_end_to_end(script_env, database_url, stub, tmp_path):
    served = stub.state.rows("WHOSIS_000001")
    facts = _distinct_facts(served)
    outputs = _run_pipeline(script_env)
    summaries = [o.stdout.strip() for o in outputs]
    assert re.fullmatch(
        r"extract life_expectancy_at_birth: 12936 rows \(source count 12936\), 0 rejects, 1 batch\(es\), [\d.]+s",
        summaries[0],
    )
    assert re.fullmatch(
        r"transform life_expectancy_at_birth: 12936 rows, 0 rejects, 1 batch\(es\), [\d.]+s", summaries[1]
    )
    assert re.fullmatch(
        rf"load life_expectancy_at_birth: {facts} rows written of {facts} staged, 0 rejects, 1 batch\(es\), [\d.]+s",
        summaries[2],
    )
    assert _count(database_url) == facts == 12936
    assert _phase_dirs_empty(tmp_path)

    # A second run of the same data adds and rewrites nothing.
    outputs = _run_pipeline(script_env)
    assert outputs[2].stdout.startswith("load life_expectancy_at_birth: 0 rows written")
    assert _count(database_url) == facts

    # Another real download of the same facts, where every Id differs, adds nothing.
    stub.use_download("WHOSIS_000001", 1)
    assert {r["Id"] for r in stub.state.rows("WHOSIS_000001")} != {r["Id"] for r in served}
    outputs = _run_pipeline(script_env)
    assert outputs[2].stdout.startswith("load life_expectancy_at_birth: 0 rows written")
    assert _count(database_url) == facts

    # A changed value is updated in place.
    changed = [dict(r) for r in served]
    target = next(r for r in changed if r["SpatialDim"] == "SOM" and r["TimeDim"] == 2008 and r["Dim1"] == "SEX_MLE")
    target.update(NumericValue=50.5, Value="50.5 [49.0-52.0]", Low=49.0, High=52.0)
    stub.set_rows("WHOSIS_000001", changed)
    outputs = _run_pipeline(script_env)
    assert outputs[2].stdout.startswith("load life_expectancy_at_birth: 1 rows written")
    assert _count(database_url) == facts
    assert (
        _count(
            database_url,
            "SELECT numeric_value FROM life_expectancy_at_birth WHERE spatial_dim = 'SOM' AND time_dim = 2008 "
            "AND dim1 = 'SEX_MLE'",
        )
        == 50.5
    )
    assert _phase_dirs_empty(tmp_path)


def test_embedded_database_when_none_configured(script_env, stub, enterable_dir):
    env = dict(script_env, GHO_DATA_DIR=str(enterable_dir / "data"))
    env.pop("DATABASE_URL")
    outputs = _run_pipeline(env)
    assert "using database: embedded PostgreSQL in " + str(enterable_dir / "data" / "postgres") in outputs[2].stderr
    check = run_script("tests/test_c_psql.py", env=env, check=0)
    assert check.stdout.startswith("life_expectancy_at_birth: ")
    assert len(check.stdout.splitlines()) == 12  # count, header, ten rows
    assert (enterable_dir / "data" / "postgres" / "PG_VERSION").exists()


def test_unreachable_database_is_one_line_and_keeps_staging(script_env, tmp_path):
    env = dict(script_env, DATABASE_URL="postgresql://etl:s3cretpw@127.0.0.1:9/gho")
    run_script("start_extract.py", env=env, check=0)
    run_script("start_transform.py", env=env, check=0)
    result = run_script("start_load.py", env=env)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot connect to postgresql://etl@127.0.0.1:9/gho" in errors[0]
    assert "s3cretpw" not in result.stderr + result.stdout
    assert "s3cretpw" not in (tmp_path / "logs" / "gho_etl.jsonl").read_text()
    assert len(list(Layout(tmp_path / "data").staging("life_expectancy_at_birth").glob("*.parquet"))) == 1


@pytest.mark.parametrize("phase", PHASES)
def test_nothing_to_do_is_success(script_env, phase):
    result = run_script(f"start_{phase}.py", "--dataset", "life_expectancy_at_60", env=script_env)
    if phase == "extract":
        assert result.returncode == 0 and "life_expectancy_at_60" in result.stdout
    else:
        assert result.returncode == 0, result.stderr
