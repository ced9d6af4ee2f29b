"""`scripts/indicators.py` as a user runs it: find an indicator, add it, run it, switch datasets on and off.

Through the stand-in serving the real catalogue (../shared/gho_samples) and a real PostgreSQL.
"""

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import requires_samples, run_script
from tests.pipeline_checks import scalar

pytestmark = requires_samples


def _added(env) -> dict:
    path = Path(env["GHO_DATASETS_FILE"])
    return json.loads(path.read_text()) if path.exists() else {}


def test_search_finds_by_word_in_the_api_then_in_the_loaded_catalogue(script_env):
    script_env = dict(script_env, GHO_REFERENCE_HOURS="24")
    found = run_script("indicators.py", "search", "drinking", "WATER", env=script_env, check=0)
    assert "WSH_WATER_BASIC" in found.stdout and "at least basic drinking-water services" in found.stdout
    assert "in the API's catalogue" in found.stdout
    assert "&amp;" not in run_script("indicators.py", "search", "&", "--limit", "500", env=script_env).stdout
    run_script("start_scheduler.py", "--once", env=script_env, check=0)  # loads the catalogue too
    again = run_script("indicators.py", "search", "life", "expectancy", "birth", env=script_env, check=0)
    assert "in the loaded catalogue (gho_indicators)" in again.stdout
    assert "WHOSIS_000001" in again.stdout and "[dataset life_expectancy_at_birth]" in again.stdout
    nothing = run_script("indicators.py", "search", "no-such-words-anywhere", env=script_env, check=0)
    assert "0 indicator(s) match" in nothing.stdout


def test_show_names_the_dimensions_and_the_rows_at_who(script_env):
    shown = run_script("indicators.py", "show", "WSH_WATER_BASIC", env=script_env, check=0)
    assert "Population using at least basic drinking-water services (%)" in shown.stdout
    assert "rows at WHO: 12607" in shown.stdout
    assert "RESIDENCEAREATYPE (Residence Area Type)" in shown.stdout and "COUNTRY (Country)" in shown.stdout
    missing = run_script("indicators.py", "show", "NOT_A_CODE", env=script_env, check=2)
    assert missing.stderr.startswith("error: no indicator 'NOT_A_CODE' at WHO")


def test_add_then_once_loads_it_beside_the_built_in_datasets(script_env, database_url):
    script_env = dict(script_env, GHO_REFERENCE_HOURS="24")
    added = run_script("indicators.py", "add", "WSH_WATER_BASIC", env=script_env, check=0)
    assert "added dataset wsh_water_basic" in added.stdout
    assert _added(script_env) == {"wsh_water_basic": {"indicator": "WSH_WATER_BASIC", "enabled": True}}
    listed = run_script("indicators.py", "list", env=script_env, check=0).stdout
    assert "life_expectancy_at_birth" in listed and "wsh_water_basic" in listed  # added to, not replaced
    run_script("start_scheduler.py", "--once", "--dataset", "wsh_water_basic", env=script_env, check=0)
    assert scalar(database_url, "SELECT count(*) FROM wsh_water_basic") == 12607
    by_name = "SELECT count(*) FROM wsh_water_basic_labeled WHERE location_name = 'Germany'"
    assert scalar(database_url, by_name) > 0
    again = run_script("indicators.py", "add", "WSH_WATER_BASIC", env=script_env, check=2)
    assert "exists already" in again.stderr


@pytest.mark.parametrize(
    "args, problem",
    [
        (["NOT_A_CODE"], "no indicator 'NOT_A_CODE' in the API's catalogue"),
        (["WSH_WATER_BASIC", "--schedule", "every 99999999999 days"], ".schedule:"),
        (["WSH_WATER_BASIC", "--table", "pg_class"], "is reserved"),
        (["WSH_WATER_BASIC", "--table", "life_expectancy_at_birth"], "is already used by"),
        (["WSH_WATER_BASIC", "--name", "9lives"], "must be a plain identifier"),
    ],
)
def test_a_bad_add_is_one_line_and_leaves_the_file_as_it_was(script_env, args, problem):
    run_script("indicators.py", "add", "WSH_8", env=script_env, check=0)
    before = Path(script_env["GHO_DATASETS_FILE"]).read_bytes()
    failed = run_script("indicators.py", "add", *args, env=script_env, check=2)
    assert problem in failed.stderr and len(failed.stderr.strip().splitlines()) == 1
    assert Path(script_env["GHO_DATASETS_FILE"]).read_bytes() == before


def test_disable_and_enable_a_built_in_dataset_and_remove_only_an_added_one(script_env):
    run_script("indicators.py", "disable", "life_expectancy_at_birth", env=script_env, check=0)
    assert _added(script_env) == {"life_expectancy_at_birth": {"enabled": False}}
    refused = run_script("indicators.py", "remove", "life_expectancy_at_birth", env=script_env, check=2)
    assert "defined in config/config.py" in refused.stderr and "disable" in refused.stderr
    nothing = run_script("start_scheduler.py", "--once", env=script_env, check=2)
    assert "no enabled dataset" in nothing.stderr
    run_script("indicators.py", "enable", "life_expectancy_at_birth", env=script_env, check=0)
    run_script("indicators.py", "add", "WSH_8", "--disabled", env=script_env, check=0)
    assert _added(script_env)["wsh_8"]["enabled"] is False
    run_script("indicators.py", "remove", "wsh_8", env=script_env, check=0)
    assert "wsh_8" not in _added(script_env)
    unknown = run_script("indicators.py", "enable", "nope", env=script_env, check=2)
    assert unknown.stderr.startswith("error: unknown dataset 'nope'")


def test_edits_at_the_same_time_lose_none(script_env):
    codes = ["WSH_4", "WSH_5", "WSH_6", "WSH_7", "WSH_8", "WSH_10"]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda c: run_script("indicators.py", "add", c, env=script_env), codes))
    assert [r.returncode for r in results] == [0] * len(codes), [r.stderr for r in results]
    assert sorted(_added(script_env)) == sorted(c.lower() for c in codes)
    folder = Path(script_env["GHO_DATASETS_FILE"]).parent
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".added_datasets.json.")]  # no temp file left


def test_a_broken_datasets_file_stops_every_command_with_one_line_naming_it(script_env):
    path = Path(script_env["GHO_DATASETS_FILE"])
    for content, problem in (("{not json", "GHO_DATASETS_FILE"), ('{"x": {"indicator": 5}}', str(path))):
        path.write_text(content)
        for script in ("start_scheduler.py", "status.py", "indicators.py"):
            args = ["--once"] if script == "start_scheduler.py" else (["list"] if script == "indicators.py" else [])
            failed = run_script(script, *args, env=script_env, check=2)
            assert problem in failed.stderr and len(failed.stderr.strip().splitlines()) == 1, failed.stderr


def test_the_added_file_names_a_fifo_without_hanging(script_env, tmp_path):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    env = dict(script_env, GHO_DATASETS_FILE=str(fifo))
    failed = run_script("indicators.py", "list", env=env, check=2, timeout=20)
    assert "is not a regular file" in failed.stderr


@pytest.mark.parametrize("code", ["../Indicator", "WSH_WATER_BASIC?$filter=x", "A B"])
def test_a_code_that_is_no_code_never_reaches_the_api(script_env, stub, code):
    for verb in ("show", "add"):
        failed = run_script("indicators.py", verb, code, env=script_env, check=2)
        assert "is not a GHO indicator code" in failed.stderr
    assert [r for r in stub.state.request_log() if r["path"] != "/api/Indicator"] == []


def test_refresh_makes_a_configured_schema_that_does_not_exist_yet(script_env, database_url):
    env = dict(script_env, GHO_DB_SCHEMA="brand_new")
    shown = run_script("indicators.py", "refresh", env=env, check=0)
    assert shown.stdout.startswith("reference: 3038 indicators")
    assert scalar(database_url, "SELECT count(*) FROM brand_new.gho_indicators") == 3038


def test_a_file_entry_may_turn_a_built_in_dataset_into_one_of_several_indicators():
    from src.datasets_file import merge_datasets
    from src.settings import validate_datasets

    base = {"life": {"indicator": "WHOSIS_000001", "schedule": "every day at 03:00"}}
    merged = merge_datasets(base, {"life": {"indicators": ["WHOSIS_000001", "WHOSIS_000015"]}})
    dataset = validate_datasets(merged)["life"]
    assert dataset.indicators == ("WHOSIS_000001", "WHOSIS_000015") and dataset.schedule.text == "every day at 03:00"
    assert base == {"life": {"indicator": "WHOSIS_000001", "schedule": "every day at 03:00"}}  # untouched


def test_a_symlinked_datasets_file_stays_a_symlink_and_a_second_dataset_of_a_code_is_noted(script_env, tmp_path):
    target = tmp_path / "kept" / "datasets.json"
    target.parent.mkdir()
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    env = dict(script_env, GHO_DATASETS_FILE=str(link))
    run_script("indicators.py", "add", "WSH_8", env=env, check=0)
    again = run_script("indicators.py", "add", "WSH_8", "--name", "wsh_8_again", env=env, check=0)
    assert "note: wsh_8 loads WSH_8 too" in again.stdout
    assert link.is_symlink() and sorted(json.loads(target.read_text())) == ["wsh_8", "wsh_8_again"]
