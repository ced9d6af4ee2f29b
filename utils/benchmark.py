#!/usr/bin/env python3
"""Measure the pipeline against PostgreSQL's own limit and a naive baseline, in one run.

Starts the GHO stand-in serving a generated 25-field indicator of `--rows N`
and an embedded PostgreSQL 16, then measures, side by side:

- raw COPY: `COPY ... FROM STDIN` of the same rows from a ready CSV (the limit),
- pandas.to_sql: the hand-rolled baseline (`DataFrame.to_sql`, default method),
- our extract, transform and load (first load into an empty table),
- a merge re-run with every 7th value revised upstream,
- a re-run with nothing changed (the load must write zero rows).

Each phase runs as the real script in its own process; its time is the
pipeline's own measure of the phase (interpreter start-up excluded) and its
peak RSS is that process's. Prints a table, checks the targets and writes all
figures as JSON.

    python3 utils/benchmark.py                       # 1,000,000 rows
    python3 utils/benchmark.py --rows 100000
    python3 utils/benchmark.py --rows 1000000,3000000  # also compares peak RSS across sizes
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from utils.measure import run_measured  # noqa: E402

INDICATOR = "BENCH_1"
DATASET = "bench"
VARY_EVERY = 7
TARGETS = {
    "load_vs_copy_rate": 0.5,  # first load: at least half the raw COPY rate
    "merge_vs_copy_time": 3.0,  # merge re-run with 1/7 changed: within 3x the raw COPY time
    "transform_rows_per_s": 200_000,
    "peak_rss_mb": 600,
    "rss_growth_3x_rows": 1.2,
    "end_to_end_vs_to_sql": 10.0,
}


class BenchmarkError(Exception):
    pass


def _log(message):
    print(message, file=sys.stderr, flush=True)


class StandIn:
    """The GHO stand-in in its own process (so its memory and CPU are not ours)."""

    def __init__(self, rows, vary_every=0):
        command = [
            sys.executable,
            str(PROJECT_ROOT / "utils" / "gho_stub.py"),
            "--port",
            "0",
            "--no-samples",
            "--generate",
            f"{INDICATOR}={rows}",
            "--vary-every",
            str(vary_every),
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if " at http" not in line:
            self.stop()
            raise BenchmarkError(f"the stand-in did not start: {line.strip() or 'no output'}")
        self.base_url = line.rsplit(" at ", 1)[1].strip()

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def _run_phase(name, env, log_file):
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


def _columns_sql(names):
    from psycopg2 import sql

    from src import schema

    return sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(schema.pg_type(c))) for c in names)


def _raw_copy(url, parquet_path):
    """COPY a ready CSV of the rows into a plain table of the same columns: what PostgreSQL itself can do."""
    import psycopg2
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from psycopg2 import sql

    csv_path = Path(parquet_path).with_suffix(".csv")
    table = pq.read_table(parquet_path)
    pacsv.write_csv(table, csv_path, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    names, rows = table.column_names, table.num_rows
    del table

    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS raw_copy")
        cursor.execute(sql.SQL("CREATE TABLE raw_copy ({})").format(_columns_sql(names)))
    connection.close()
    connection = psycopg2.connect(url)
    started = time.perf_counter()
    with connection, connection.cursor() as cursor, open(csv_path, "rb") as handle:
        cursor.copy_expert("COPY raw_copy FROM STDIN WITH (FORMAT csv)", handle, size=1 << 20)
    seconds = time.perf_counter() - started
    connection.close()
    csv_path.unlink()
    return seconds, rows


def _to_sql(url, parquet_path, limit):
    """The naive baseline: pandas.to_sql with its default method, on the same rows."""
    import pyarrow.parquet as pq
    from sqlalchemy import create_engine

    frame = pq.read_table(parquet_path).to_pandas()
    if limit:
        frame = frame.head(limit)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    started = time.perf_counter()
    frame.to_sql("naive_to_sql", engine, index=False, if_exists="replace")
    seconds = time.perf_counter() - started
    engine.dispose()
    return seconds, len(frame)


def _baseline(kind, url, parquet_path, limit=None):
    """Run a baseline in its own process, so neither its memory nor its imports weigh on ours
    (a child forked from a big parent would report the parent's pages as its own peak RSS)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--internal", kind, url, str(parquet_path)]
    command += [str(limit or 0)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchmarkError(f"the {kind} baseline failed:\n{result.stderr.strip()}")
    return json.loads(result.stdout)


def _internal(argv) -> int:
    kind, url, parquet_path, limit = argv
    if kind == "raw_copy":
        seconds, rows = _raw_copy(url, parquet_path)
    else:
        seconds, rows = _to_sql(url, parquet_path, int(limit))
    print(json.dumps({"seconds": seconds, "rows": rows}))
    return 0


def _scalar(url, query):
    import psycopg2

    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(query)
        value = cursor.fetchone()[0]
    connection.close()
    return value


def run(rows, workdir, baseline_rows=None):
    """Every measurement for one size; returns the result dict."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver

        server = pgserver.get_server(work / "pg", cleanup_mode="delete")
    try:
        admin_url = server.get_uri()
        import psycopg2

        admin = psycopg2.connect(admin_url)
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute("DROP DATABASE IF EXISTS bench")
            cursor.execute("CREATE DATABASE bench")
        admin.close()
        url = server.get_uri("bench")
        config = work / "datasets.json"
        config.write_text(json.dumps({DATASET: {"indicator": INDICATOR, "mode": "merge"}}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "GHO_")) and k != "DATABASE_URL"}
        env.update(
            DATABASE_URL=url,
            DATASET_CONFIG_FILE=str(config),
            GHO_DATA_DIR=str(work / "data"),
            GHO_LOG_DIR=str(work / "logs"),
            GHO_ENV_FILE=str(work / "no.env"),
            GHO_LOG_LEVEL="INFO",
        )
        log_file = work / "logs" / "gho_etl.jsonl"
        steps = {}

        def measure(step, phase, expected_rows):
            seconds, rss, summary = _run_phase(phase, env, log_file)
            steps[step] = {"seconds": seconds, "rows": expected_rows, "peak_rss_mb": round(rss, 1), "output": summary}
            _log(f"  {step}: {seconds:.2f}s, peak RSS {rss:.0f} MB  ({summary})")

        _log(f"[{rows:,} rows] starting the stand-in (generating rows)...")
        stand_in = StandIn(rows)
        try:
            env["GHO_API_BASE_URL"] = stand_in.base_url
            measure("extract", "extract", rows)
            measure("transform", "transform", rows)
        finally:
            stand_in.stop()
        staged = sorted((work / "data" / "staging" / DATASET).glob("*.parquet"))
        if len(staged) != 1:
            raise BenchmarkError(f"expected one staging batch, found {len(staged)}")
        kept = work / "same-rows.parquet"
        shutil.copy(staged[0], kept)
        measure("load", "load", rows)
        steps["load"]["rows_written"] = _scalar(url, f"SELECT count(*) FROM {DATASET}")

        raw = _baseline("raw_copy", url, kept)
        steps["raw_copy"] = {"seconds": raw["seconds"], "rows": raw["rows"], "peak_rss_mb": None}
        _log(f"  raw_copy: {raw['seconds']:.2f}s")

        limit = baseline_rows if baseline_rows and baseline_rows < rows else None
        _log(f"  pandas.to_sql on {limit or rows:,} rows (slow by design)...")
        naive = _baseline("to_sql", url, kept, limit)
        steps["pandas_to_sql"] = {"seconds": naive["seconds"], "rows": naive["rows"], "peak_rss_mb": None}
        _log(f"  pandas_to_sql: {naive['seconds']:.2f}s")

        _log(f"  upstream revises every {VARY_EVERY}th value...")
        stand_in = StandIn(rows, vary_every=VARY_EVERY)
        try:
            env["GHO_API_BASE_URL"] = stand_in.base_url
            measure("merge_extract", "extract", rows)
            measure("merge_transform", "transform", rows)
            before = _scalar(url, "SELECT count(*) FROM etl_batches")
            measure("merge_load", "load", rows)
            steps["merge_load"]["rows_written"] = _scalar(
                url, "SELECT rows_inserted + rows_updated FROM etl_batches ORDER BY loaded_at DESC LIMIT 1"
            )
            assert _scalar(url, "SELECT count(*) FROM etl_batches") == before + 1
            measure("unchanged_extract", "extract", rows)
            measure("unchanged_transform", "transform", rows)
            xmin_before = _scalar(url, f"SELECT md5(string_agg(xmin::text, ',' ORDER BY id)) FROM {DATASET}")
            measure("unchanged_load", "load", rows)
            xmin_after = _scalar(url, f"SELECT md5(string_agg(xmin::text, ',' ORDER BY id)) FROM {DATASET}")
            steps["unchanged_load"]["rows_written"] = _scalar(
                url, "SELECT rows_inserted + rows_updated FROM etl_batches ORDER BY loaded_at DESC LIMIT 1"
            )
            steps["unchanged_load"]["row_versions_rewritten"] = 0 if xmin_before == xmin_after else "some"
        finally:
            stand_in.stop()
        kept.unlink()
        return _summarise(rows, steps)
    finally:
        server.cleanup()


def _summarise(rows, steps):
    raw = steps["raw_copy"]
    raw_rate = raw["rows"] / raw["seconds"]
    for step in steps.values():
        step["rows_per_s"] = round(step["rows"] / step["seconds"]) if step["seconds"] else None
        step["vs_raw_copy_rate"] = round(step["rows_per_s"] / raw_rate, 3) if step["rows_per_s"] else None
        step["seconds"] = round(step["seconds"], 3)
    naive_rate = steps["pandas_to_sql"]["rows"] / steps["pandas_to_sql"]["seconds"]
    end_to_end = sum(steps[s]["seconds"] for s in ("extract", "transform", "load"))
    naive_seconds = rows / naive_rate  # measured rate; equals the measured time unless --baseline-rows capped it
    phases = [s for s in steps if steps[s]["peak_rss_mb"] is not None]
    checks = {
        "load_vs_copy_rate": (steps["load"]["vs_raw_copy_rate"], ">=", TARGETS["load_vs_copy_rate"]),
        "merge_vs_copy_time": (
            round(steps["merge_load"]["seconds"] / raw["seconds"], 3),
            "<=",
            TARGETS["merge_vs_copy_time"],
        ),
        "unchanged_rows_written": (steps["unchanged_load"]["rows_written"], "==", 0),
        "transform_rows_per_s": (steps["transform"]["rows_per_s"], ">=", TARGETS["transform_rows_per_s"]),
        "peak_rss_mb": (max(steps[s]["peak_rss_mb"] for s in phases), "<=", TARGETS["peak_rss_mb"]),
        "end_to_end_vs_to_sql": (round(naive_seconds / end_to_end, 2), ">=", TARGETS["end_to_end_vs_to_sql"]),
    }
    return {
        "rows": rows,
        "steps": steps,
        "end_to_end_seconds": round(end_to_end, 3),
        "pandas_to_sql_seconds_for_all_rows": round(naive_seconds, 3),
        "checks": {name: _check(*value) for name, value in checks.items()},
    }


def _check(value, op, target):
    ok = {">=": value >= target, "<=": value <= target, "==": value == target}[op]
    return {"value": value, "target": f"{op} {target}", "met": bool(ok)}


def _table(result) -> str:
    lines = [
        f"gho-etl benchmark: {result['rows']:,} rows (25-field GHO rows, embedded PostgreSQL 16)",
        f"{'step':<22}{'seconds':>9}{'rows/s':>11}{'peak RSS MB':>13}{'x raw COPY rate':>17}{'rows written':>14}",
    ]
    for name, step in result["steps"].items():
        rss = f"{step['peak_rss_mb']:.0f}" if step["peak_rss_mb"] is not None else "-"
        written = step.get("rows_written", "")
        lines.append(
            f"{name:<22}{step['seconds']:>9.2f}{step['rows_per_s']:>11,}{rss:>13}"
            f"{step['vs_raw_copy_rate']:>17.3f}{written!s:>14}"
        )
    lines.append(
        f"end to end (extract+transform+load): {result['end_to_end_seconds']:.2f}s; "
        f"pandas.to_sql for the same rows: {result['pandas_to_sql_seconds_for_all_rows']:.2f}s"
    )
    lines.append("targets:")
    for name, check in result["checks"].items():
        lines.append(f"  {'met ' if check['met'] else 'MISS'} {name}: {check['value']} (target {check['target']})")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--internal"]:
        return _internal(argv[1:])
    parser = argparse.ArgumentParser(
        description="Benchmark extract, transform, load, merge and no-change re-runs against raw COPY "
        "and pandas.to_sql on the same generated rows.",
        epilog="exit codes: 0 measured (and, with --check, every target met), 1 a target missed with --check "
        "or the benchmark failed, 2 bad usage.",
    )
    parser.add_argument(
        "--rows", default="1000000", help="rows to generate; a comma list runs each size (default 1000000)"
    )
    parser.add_argument("--json", type=Path, default=PROJECT_ROOT / "logs" / "benchmark.json", help="JSON output")
    parser.add_argument(
        "--baseline-rows", type=int, default=None, help="run pandas.to_sql on only this many rows and scale its rate"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep the working files here (default: a temp dir)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    try:
        sizes = [int(text.replace("_", "")) for text in args.rows.split(",")]
    except ValueError:
        parser.error(f"--rows wants whole numbers, got {args.rows!r}")
    if any(size < 1000 for size in sizes):
        parser.error("--rows must be at least 1000")
    results = []
    try:
        for size in sizes:
            workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gho-etl-bench-"))
            try:
                results.append(run(size, workdir / str(size), args.baseline_rows))
            finally:
                if args.workdir is None:
                    shutil.rmtree(workdir, ignore_errors=True)
            print(_table(results[-1]), flush=True)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    output = {"results": results}
    if len(results) > 1:
        small, large = results[0], results[-1]
        phases = [s for s, v in small["steps"].items() if v["peak_rss_mb"] is not None]
        growth = max(large["steps"][s]["peak_rss_mb"] / small["steps"][s]["peak_rss_mb"] for s in phases)
        output["rss_growth"] = _check(round(growth, 3), "<=", TARGETS["rss_growth_3x_rows"])
        output["rss_growth"]["sizes"] = [small["rows"], large["rows"]]
        print(f"peak RSS growth from {small['rows']:,} to {large['rows']:,} rows: x{growth:.3f} (target <= 1.2)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(output, indent=1))
    print(f"results written to {args.json}")
    missed = [name for r in results for name, c in r["checks"].items() if not c["met"]]
    if "rss_growth" in output and not output["rss_growth"]["met"]:
        missed.append("rss_growth")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
