"""Every measurement for one size, in order, on a fresh embedded PostgreSQL: the pipeline's first run,
the baselines on the very rows it loaded, then the re-runs (which need the first load in place)."""

from pathlib import Path

from utils.bench.baselines import measure_baselines
from utils.bench.database import create_bench_database, embedded_postgres
from utils.bench.phases import PhaseRecorder, pipeline_env
from utils.bench.pipeline_runs import measure_first_run, measure_reruns
from utils.bench.results import summarise


def run(rows, workdir, baseline_rows=None):
    """Every measurement for one size; returns the result dict."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    with embedded_postgres(work) as server:
        url = create_bench_database(server)
        phases = PhaseRecorder(pipeline_env(url, work), work / "logs" / "gho_etl.jsonl")
        same_rows = measure_first_run(phases, rows, work, url)
        measure_baselines(phases.steps, url, same_rows, rows, baseline_rows)
        measure_reruns(phases, rows, url)
        same_rows.unlink()
        return summarise(rows, phases.steps)
