"""The pipeline's own scripts run as a user runs them, one process a phase, each recorded as a step.

A phase's time is the pipeline's own measure of it (from its JSON log, so interpreter start-up is
excluded) and its peak RSS is that process's alone.
"""

import json
import os
import sys

from utils.bench.console import BenchmarkError, log
from utils.bench.workload import DATASET, INDICATOR, PAGE_SIZE, PROJECT_ROOT
from utils.measure import run_measured


def pipeline_env(url, work):
    """The scripts' environment: our database, a one-dataset config and folders under `work`, nothing inherited
    that could point them elsewhere (PG*, GHO_*, DATABASE_URL)."""
    config = work / "datasets.json"
    # probe: false, so the unchanged re-run measures a full download, transform and load as before the probe.
    config.write_text(json.dumps({DATASET: {"indicator": INDICATOR, "mode": "merge", "probe": False}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "GHO_")) and k != "DATABASE_URL"}
    env.update(
        DATABASE_URL=url,
        DATASET_CONFIG_FILE=str(config),
        GHO_DATA_DIR=str(work / "data"),
        GHO_LOG_DIR=str(work / "logs"),
        GHO_ENV_FILE=os.devnull,
        GHO_LOG_LEVEL="INFO",
        GHO_PAGE_SIZE=str(PAGE_SIZE),
    )
    return env


def run_phase(name, env, log_file):
    """Run scripts/start_<name>.py; return (seconds as the pipeline measured it, peak RSS MB, summary)."""
    process, peak_mb = run_measured(
        [sys.executable, str(PROJECT_ROOT / "scripts" / f"start_{name}.py")], env=env, cwd=PROJECT_ROOT
    )
    stdout, stderr = process.stdout, process.stderr
    if process.returncode != 0:
        raise BenchmarkError(f"start_{name}.py exited {process.returncode}:\n{stderr.strip()}")
    seconds = None
    for line in log_file.read_text().splitlines():
        record = json.loads(line)
        if record.get("phase") == name and "duration_s" in record:
            seconds = record["duration_s"]
    if seconds is None:
        raise BenchmarkError(f"start_{name}.py logged no duration")
    return seconds, peak_mb, stdout.strip()


class PhaseRecorder:
    """Runs phases with one environment and keeps every step's figures, in the order measured (the table's order)."""

    def __init__(self, env, log_file):
        self.env = env
        self.log_file = log_file
        self.steps = {}

    def measure(self, step, phase, expected_rows):
        seconds, rss, summary = run_phase(phase, self.env, self.log_file)
        self.steps[step] = {"seconds": seconds, "rows": expected_rows, "peak_rss_mb": round(rss, 1), "output": summary}
        log(f"  {step}: {seconds:.2f}s, peak RSS {rss:.0f} MB  ({summary})")
