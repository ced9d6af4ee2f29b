"""`make demo` from the project root: the set-up, every enabled dataset once, then where the data is."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import PROJECT_ROOT


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_runs_every_enabled_dataset_and_says_where_the_data_is(script_env, tmp_path):
    env = dict(script_env)
    env.pop("GHO_API_BASE_URL")  # the demo starts its own stand-in
    env.pop("GHO_REFERENCE_HOURS")  # as a user has it: the names are fetched too
    venv = Path(sys.prefix)  # the suite's own virtualenv: its requirements are in place
    result = subprocess.run(
        ["make", "demo", f"VENV={venv}"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "GHO stand-in serving" in result.stdout
    assert "\nload life_expectancy_at_birth: " in result.stdout
    assert "The data is in postgresql://" in result.stdout and "life_expectancy_at_birth" in result.stdout
    assert "scripts/db.py psql -c" in result.stdout
    assert "life_expectancy_at_birth_labeled WHERE location_name ILIKE" in result.stdout
