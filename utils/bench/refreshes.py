"""Refreshes of data that did not change, as a scheduled job runs them (`start_scheduler.py --once`, one process
for extract, transform and load, with the change probe on, as a dataset has it by default):

- same_pages_refresh: GHO_FULL_REFRESH_DAYS=0, so the job downloads in full; the pages are those of the last
  batch loaded, so transform and load are skipped ("unchanged (same pages)"),
- probe_skip_refresh: GHO_FULL_REFRESH_DAYS=7 right after that download, so the change probe is asked, finds
  what the download found and nothing is downloaded ("unchanged (probe)").

The reference tables (indicator names, dimension titles) are left out (GHO_REFERENCE_HOURS=0): their refresh,
once a GHO_REFERENCE_HOURS for every dataset together, is not a cost of the dataset's refresh. A refresh's
seconds are the job's own measure (its first phase's start to its last phase's end in the run
history, interpreter start-up excluded, as for the other steps), and its requests are those the stand-in
answered while it ran. The process's wall time is kept beside them, and so is the time the stand-in took to
make its answers (`stand_in_seconds`, from its request log). The stand-in answers the probe's question (a
few rows in `Date` order) with a top-N pick, kept until its rows change, and it is asked that question once
before the probe-skipped refresh (`_index`): GHO answers it from its database's index, the stand-in has to
build its answer once. The probe target is checked on the job's whole time.
"""

import json
import sys
import time

from src.contracts.ledger import RUNS_TABLE
from utils.bench.console import BenchmarkError, log
from utils.bench.workload import DATASET, INDICATOR, PROJECT_ROOT
from utils.measure import run_measured

# The latest run of the job: how long it took, how it was skipped, and what its load wrote.
LAST_JOB = f"""
    SELECT extract(epoch FROM max(finished_at) - min(started_at)), max(unchanged_by),
           max(rows_written) FILTER (WHERE phase = 'load')
    FROM {RUNS_TABLE} WHERE run_id = (SELECT run_id FROM {RUNS_TABLE} ORDER BY id DESC LIMIT 1)"""
REFRESHES = (("same_pages_refresh", "0"), ("probe_skip_refresh", "7"))


def measure_refreshes(phases, stand_in, rows, url, work):
    """Both refreshes, in order (the first keeps what the second's probe is compared with), as steps."""
    config = work / "datasets-probe.json"
    config.write_text(json.dumps({DATASET: {"indicator": INDICATOR, "mode": "merge"}}))
    for step, full_refresh_days in REFRESHES:
        env = dict(phases.env, DATASET_CONFIG_FILE=str(config), GHO_FULL_REFRESH_DAYS=full_refresh_days)
        env["GHO_REFERENCE_HOURS"] = "0"
        if step == "probe_skip_refresh":
            _index(stand_in)
        phases.steps[step] = _refresh(env, stand_in, rows, url)
        figures = phases.steps[step]
        log(f"  {step}: {figures['seconds']:.2f}s, {figures['requests']} requests, {figures['unchanged_by']}")


def _index(stand_in):
    """Ask the stand-in the probe's question once before the measured run, so that it answers from what it
    keeps (utils/stub/indicator_rows.py `leading_rows`) as a database answers from its index; it has none,
    and its first answer costs it a pass over every row (1.8 s at 1,000,000 rows), a cost of the stand-in."""
    import requests

    from src.sources.gho_odata.probe import probe_params

    answer = requests.get(f"{stand_in.base_url}/{INDICATOR}", params=probe_params({"filter": None}), timeout=600)
    if answer.status_code != 200:
        raise BenchmarkError(f"the stand-in refused the probe's question: HTTP {answer.status_code}")


def _refresh(env, stand_in, rows, url):
    before = len(stand_in.request_log())
    started = time.perf_counter()
    command = [sys.executable, str(PROJECT_ROOT / "scripts" / "start_scheduler.py"), "--once"]
    process, peak_mb = run_measured(command, env=env, cwd=PROJECT_ROOT)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise BenchmarkError(f"start_scheduler.py --once exited {process.returncode}:\n{process.stderr.strip()}")
    answered = stand_in.request_log()[before:]
    seconds, unchanged_by, written = _last_job(url)
    return {
        "seconds": float(seconds),
        "stand_in_seconds": round(sum(entry["at"] - (entry.get("arrived") or entry["at"]) for entry in answered), 3),
        "rows": rows,
        "peak_rss_mb": round(peak_mb, 1),
        "rows_written": written,
        "requests": len(answered),
        "unchanged_by": unchanged_by,
        "wall_seconds": round(wall, 3),
        "output": process.stdout.strip().splitlines()[-1] if process.stdout.strip() else "",
    }


def _last_job(url):
    import psycopg2

    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(LAST_JOB)
        found = cursor.fetchone()
    connection.close()
    return found
