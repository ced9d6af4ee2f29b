"""The systemd unit we ship (deploy/gho-etl-scheduler.service) is one systemd accepts, running a real command."""

import shutil
import subprocess
import sys

import pytest

from tests.helpers import PROJECT_ROOT, run_script

UNIT = PROJECT_ROOT / "deploy" / "gho-etl-scheduler.service"


def _settings(unit_text):
    return [line.split("=", 1) for line in unit_text.splitlines() if "=" in line and not line.startswith("#")]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_unit_with_this_checkout_in_place_of_opt(tmp_path):
    # verify checks that ExecStart's program exists: point the unit at this checkout and this Python.
    text = UNIT.read_text().replace("/opt/gho-etl/.venv/bin/python", sys.executable)
    local = tmp_path / UNIT.name
    local.write_text(text.replace("/opt/gho-etl", str(PROJECT_ROOT)))
    done = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_unit_runs_the_scheduler_attached_and_does_not_restart_a_bad_configuration(script_env):
    settings = dict(_settings(UNIT.read_text()))
    program, script, *arguments = settings["ExecStart"].split()
    assert (script, arguments) == ("/opt/gho-etl/scripts/start_scheduler.py", ["--foreground"])
    assert settings["RestartPreventExitStatus"].split() == ["2", "3"]
    assert "--foreground" in run_script("start_scheduler.py", "--help", env=script_env, check=0).stdout
