"""The many-datasets mode: what `start_scheduler.py --once` costs per dataset beyond the data's own time.

Two `--once` runs over `datasets` small indicators (all new, then nothing changed: the change probe skips
each one) are compared with the same two runs over ONE indicator holding all their rows, in a database
of its own. The difference, divided by the number of datasets, is the per-dataset overhead: start-up,
connections, run-history rows, DDL checks, locks, the reference check. It is reported three ways: wall
time of the process, the span of its JSON log (start-up before logging excluded) and the sum of its
phases' own seconds, so where the overhead sits is visible.

`python3 -m utils.bench.many_datasets [--datasets N] [--rows R]` runs it alone (the benchmark's command
line calls `measure_many_datasets`).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from utils.bench.console import BenchmarkError, log
from utils.bench.database import embedded_postgres
from utils.bench.targets import TARGETS, check
from utils.bench.workload import PROJECT_ROOT

ONE_INDICATOR = "ONE_1"
RUNS = ("first", "unchanged")
# What every run wrote into etl_runs since the run before it (ids above `after`).
NEW_RUNS = (
    "SELECT count(DISTINCT dataset) FILTER (WHERE phase = 'load' AND status = 'succeeded'), "
    "coalesce(sum(rows_written) FILTER (WHERE phase = 'load'), 0), count(*) FILTER (WHERE status <> 'succeeded'), "
    "coalesce(max(id), %s) FROM etl_runs WHERE id > %s"
)


def many_code(number) -> str:
    """The stand-in's name of its `number`-th --generate-many indicator (utils/stub/cli.py)."""
    return f"MANY_{number:04d}"


def measure_many_datasets(work_dir: Path, datasets=200, rows=2000) -> dict:
    """The many-datasets result: each run's figures, the per-dataset overheads and their checks."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    work_dir.chmod(0o755)  # as root, the embedded server's own account must enter it
    log(f"many datasets: {datasets} indicators of {rows} rows, and one of {datasets * rows} rows")
    with embedded_postgres(work_dir) as server, _stand_in(datasets, rows) as base_url:
        many = {f"many_{i:04d}": many_code(i) for i in range(1, datasets + 1)}
        steps = {}
        for label, config in (("many", many), ("one", {"one": ONE_INDICATOR})):
            url = _create_database(server, label)
            env = _env(url, base_url, work_dir / label, config)
            after = 0
            for run in RUNS:
                steps[f"{label}_{run}"], after = _measure_run(env, work_dir / label, url, after, f"{label}_{run}")
    return summarise_many(datasets, rows, steps)


def summarise_many(datasets, rows, steps) -> dict:
    """The result dict (its JSON shape is what the benchmark's report holds)."""
    overhead = {}
    for run in RUNS:
        many, one = steps[f"many_{run}"], steps[f"one_{run}"]
        overhead[run] = {
            measure: round((many[measure] - one[measure]) / datasets * 1000, 1)
            for measure in ("seconds", "cpu_seconds", "log_span_seconds", "phase_seconds")
        }
        for phase, value in many["seconds_by_phase"].items():
            overhead[run][phase] = round((value - one["seconds_by_phase"][phase]) / datasets * 1000, 1)
    checks = {
        f"per_dataset_overhead_ms_{run}": check(overhead[run]["seconds"], "<=", TARGETS["per_dataset_overhead_ms"])
        for run in RUNS
    }
    checks["unchanged_rows_written"] = check(steps["many_unchanged"]["rows_written"], "==", 0)
    checks["datasets_recorded"] = check(
        min(steps["many_first"]["datasets_recorded"], steps["many_unchanged"]["datasets_recorded"]), "==", datasets
    )
    return {
        "mode": "many_datasets",
        "datasets": datasets,
        "rows_per_dataset": rows,
        "rows": datasets * rows,
        "steps": steps,
        "per_dataset_overhead_ms": overhead,
        "checks": checks,
    }


class _stand_in:
    """The stand-in serving `datasets` indicators of `rows` rows and one of all their rows, in its own process."""

    def __init__(self, datasets, rows):
        self.command = [
            sys.executable,
            str(PROJECT_ROOT / "utils" / "gho_stub.py"),
            "--port",
            "0",
            "--no-samples",
            "--generate-many",
            f"{datasets}={rows}",
            "--generate",
            f"{ONE_INDICATOR}={datasets * rows}",
        ]

    def __enter__(self):
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if " at http" not in line:
            self.__exit__()
            raise BenchmarkError(f"the stand-in did not start: {line.strip() or 'no output'}")
        return line.rsplit(" at ", 1)[1].strip()

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(timeout=30)


def _create_database(server, name):
    import psycopg2

    admin = psycopg2.connect(server.get_uri())
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        cursor.execute(f"CREATE DATABASE {name}")
    admin.close()
    return server.get_uri(name)


def _env(url, base_url, work, config):
    """The scripts' environment: our database, stand-in and datasets, folders under `work`, nothing inherited
    that could point them elsewhere (PG*, GHO_*, DATABASE_URL)."""
    work.mkdir(parents=True, exist_ok=True)
    config_file = work / "datasets.json"
    config_file.write_text(json.dumps({name: {"indicator": code, "mode": "merge"} for name, code in config.items()}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "GHO_")) and k != "DATABASE_URL"}
    env.update(
        DATABASE_URL=url,
        DATASET_CONFIG_FILE=str(config_file),
        GHO_DATASETS_FILE=os.devnull,
        GHO_API_BASE_URL=base_url,
        GHO_DATA_DIR=str(work / "data"),
        GHO_ENV_FILE=os.devnull,
        GHO_LOG_LEVEL="INFO",
    )
    return env


def _measure_run(env, work, url, after, step):
    """One `--once` run, its log in a folder of its own: (its figures, the last etl_runs id it wrote)."""
    log_dir = work / f"logs-{step}"
    cpu_before = _children_cpu()
    started = time.monotonic()
    process = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "start_scheduler.py"), "--once", "-q"],
        env={**env, "GHO_LOG_DIR": str(log_dir)},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    cpu = _children_cpu() - cpu_before  # the process's own CPU: less moved than wall time by a busy machine
    if process.returncode != 0:
        raise BenchmarkError(f"{step}: start_scheduler.py --once exited {process.returncode}:\n{process.stderr}")
    recorded, written, not_ok, last = _new_runs(url, after)
    span, phases = _log_figures(log_dir / "gho_etl.jsonl")
    figures = {
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "log_span_seconds": round(span, 3),
        "phase_seconds": round(sum(phases.values()), 3),
        "seconds_by_phase": {phase: round(value, 3) for phase, value in phases.items()},
        "rows_written": written,
        "datasets_recorded": recorded,
        "runs_not_succeeded": not_ok,
    }
    by_phase = ", ".join(f"{phase} {value:.2f}s" for phase, value in phases.items())
    log(f"  {step}: {seconds:.2f}s wall, {cpu:.2f}s CPU, {span:.2f}s logged ({by_phase}), {written} rows written")
    return figures, last


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _new_runs(url, after):
    import psycopg2

    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(NEW_RUNS, [after, after])
            return tuple(int(value) for value in cursor.fetchone())
    finally:
        connection.close()


def _log_figures(log_file):
    """(seconds from the first to the last record of the JSON log, each phase's duration_s summed)."""
    stamps, phases = [], dict.fromkeys(("extract", "transform", "load"), 0.0)
    for line in log_file.read_text().splitlines():
        record = json.loads(line)
        stamps.append(datetime.fromisoformat(record["timestamp"]))
        if record.get("phase") in phases and "duration_s" in record:
            phases[record["phase"]] += record["duration_s"]
    return (max(stamps) - min(stamps)).total_seconds() if stamps else 0.0, phases


def table(result) -> str:
    """The runs' figures and the overheads, for a person."""
    lines = [
        f"gho-etl many datasets: {result['datasets']} x {result['rows_per_dataset']} rows, vs 1 x {result['rows']}"
    ]
    lines.append(f"{'run':<18}{'wall s':>9}{'logged s':>10}{'phases s':>10}{'rows written':>14}{'datasets':>10}")
    for name, step in result["steps"].items():
        lines.append(
            f"{name:<18}{step['seconds']:>9.2f}{step['log_span_seconds']:>10.2f}{step['phase_seconds']:>10.2f}"
            f"{step['rows_written']:>14}{step['datasets_recorded']:>10}"
        )
    for run, figures in result["per_dataset_overhead_ms"].items():
        lines.append(
            f"per-dataset overhead, {run} run: {figures['seconds']} ms wall, {figures['cpu_seconds']} ms CPU, "
            f"{figures['log_span_seconds']} ms logged, {figures['phase_seconds']} ms in phases "
            f"(extract {figures['extract']}, transform {figures['transform']}, load {figures['load']})"
        )
    for name, found in result["checks"].items():
        lines.append(f"  {'met ' if found['met'] else 'MISS'} {name}: {found['value']} (target {found['target']})")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m utils.bench.many_datasets", description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gho-etl-many-") as work:
        try:
            result = measure_many_datasets(Path(work) / "many", args.datasets, args.rows)
        except BenchmarkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if all(c["met"] for c in result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
