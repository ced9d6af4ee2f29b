"""The first run and the baselines it is compared with, measured in several rounds, interleaved, and reported
as medians.

One first run of 1,000,000 rows takes about 10 s, and this machine's speed moves by a third from one minute
to the next (raw COPY of the same rows 2.75-4.1 s across runs), so one round decides a 10x target by chance.
Each round loads into a fresh, empty database: our extract, transform and load, then raw COPY and
pandas.to_sql on the very rows that load staged, so drift reaches all three of a round alike. A step's seconds
are the median over the rounds (each round's figure is kept beside it), its peak RSS the highest, and the end
to end the median of the rounds' sums. The re-runs and refreshes that follow continue on the last round's
table.
"""

import shutil
import statistics

from utils.bench.baselines import measure_baselines
from utils.bench.console import log
from utils.bench.database import create_bench_database
from utils.bench.phases import PhaseRecorder, pipeline_env
from utils.bench.pipeline_runs import measure_first_run
from utils.bench.results import PIPELINE_PHASES


def measure_rounds(server, work, rows, baseline_rows, repeats):
    """(the last round's recorder, holding the median steps; its database URL; the rows it staged; the end to
    end of every round)."""
    rounds, end_to_end = [], []
    for index in range(repeats):
        if repeats > 1:
            log(f"[{rows:,} rows] round {index + 1} of {repeats}: first run, raw COPY, pandas.to_sql")
        url = create_bench_database(server)  # empty: every round is a first load
        round_work = work / f"round-{index + 1}" if repeats > 1 else work
        round_work.mkdir(parents=True, exist_ok=True)
        phases = PhaseRecorder(pipeline_env(url, round_work), round_work / "logs" / "gho_etl.jsonl")
        same_rows = measure_first_run(phases, rows, round_work, url)
        measure_baselines(phases.steps, url, same_rows, rows, baseline_rows)
        rounds.append(phases.steps)
        end_to_end.append(sum(phases.steps[step]["seconds"] for step in PIPELINE_PHASES))
        if index < repeats - 1:
            shutil.rmtree(round_work)  # its landing, logs and rows: gigabytes at a few million rows
    phases.steps = median_steps(rounds)
    return phases, url, same_rows, end_to_end


def median_steps(rounds) -> dict:
    """Each step of the last round, with the median seconds and highest peak RSS of every round, and every
    round's seconds as `round_seconds`."""
    steps = {}
    for name, last in rounds[-1].items():
        seconds = [measured[name]["seconds"] for measured in rounds]
        peaks = [measured[name]["peak_rss_mb"] for measured in rounds if measured[name]["peak_rss_mb"] is not None]
        steps[name] = dict(last, seconds=statistics.median(seconds), peak_rss_mb=max(peaks) if peaks else None)
        steps[name]["round_seconds"] = [round(value, 3) for value in seconds]
    return steps
