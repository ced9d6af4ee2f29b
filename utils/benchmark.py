#!/usr/bin/env python3
"""Measure what users feel, against PostgreSQL's own limit, a naive baseline and a peer, in one run.

Three modes (--modes, default all). one-size starts the GHO stand-in serving a generated 25-field indicator
of `--rows N` and an embedded PostgreSQL, then measures, side by side:

- raw COPY: `COPY ... FROM STDIN` of the same rows from a ready CSV (the limit),
- pandas.to_sql: the hand-rolled baseline (`DataFrame.to_sql`, default method),
- our extract, transform and load (first load into an empty table): these three in --repeats interleaved
  rounds (default 3), each on a fresh database, reported as medians (utils/bench/rounds.py),
- a merge re-run with every 7th value revised upstream,
- a re-run with nothing changed (the load must write zero rows),
- refreshes of that unchanged data as a scheduled job makes them: a full download of the same pages, and
  one the change probe skips (requests counted at the stand-in),
- dlt 1.31 (--peers dlt, the default), from its own pinned environment, on the same stand-in and server.

latency measures an extract whose every request waits --latency seconds against its floor; many-datasets
the cost of each of --datasets small datasets beyond their rows (utils/bench/many_datasets.py).

Each phase runs as the real script in its own process; its time is the
pipeline's own measure of the phase (interpreter start-up excluded) and its
peak RSS is that process's. Prints a table, checks the targets and writes all
figures as JSON.

    python3 utils/benchmark.py                       # 1,000,000 rows
    python3 utils/benchmark.py --rows 100000 --repeats 1
    python3 utils/benchmark.py --rows 1000000,3000000  # also compares peak RSS across sizes
    python3 utils/benchmark.py --modes latency --latency 0.5

This module is only the command line; the benchmark itself is the package
utils/bench, one job a module (see its __init__): the targets in
utils/bench/targets.py, the baselines in utils/bench/baselines.py.
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from utils.bench.baselines import run_baseline_here  # noqa: E402
from utils.bench.console import BenchmarkError  # noqa: E402
from utils.bench.modes import add_mode_arguments, measure_other_modes, parse_modes  # noqa: E402
from utils.bench.one_size import Peers, run  # noqa: E402
from utils.bench.report import rss_growth_line, table  # noqa: E402
from utils.bench.targets import missed_in_modes, missed_targets, peak_rss_growth, rss_growth_check  # noqa: E402

__all__ = ["BenchmarkError", "main", "run"]


def build_parser():
    parser = argparse.ArgumentParser(
        description="Benchmark extract, transform, load, merge and no-change re-runs and refreshes against raw "
        "COPY, pandas.to_sql and dlt on the same generated rows; an extract against a latency-bound server; many "
        "small datasets.",
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
    parser.add_argument(
        "--peers",
        choices=("dlt", "none"),
        default="dlt",
        help="peers measured beside us (default dlt, from its own environment; none: the dlt target counts as missed)",
    )
    parser.add_argument(
        "--peer-rows", type=int, default=None, help="run the peers on only this many rows and scale their rate"
    )
    parser.add_argument(
        "--peers-cache",
        type=Path,
        default=None,
        help="where the peers' environments are kept (default ~/.cache/gho-etl-bench)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="rounds of the first run, raw COPY and pandas.to_sql, interleaved; medians reported (default 3)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep the working files here (default: a temp dir)")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    add_mode_arguments(parser)
    return parser


def parse_sizes(parser, text):
    """The --rows sizes; bad ones end the command with exit 2 through parser.error."""
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",")]
    except ValueError:
        parser.error(f"--rows wants whole numbers, got {text!r}")
    if any(size < 1000 for size in sizes):
        parser.error("--rows must be at least 1000")
    return sizes


def measure_sizes(sizes, workdir, baseline_rows, peers, repeats=1):
    """Run each size and print its table as soon as it is done, so a later failure keeps the earlier tables."""
    results = []
    for size in sizes:
        work = workdir or Path(tempfile.mkdtemp(prefix="gho-etl-bench-"))
        try:
            results.append(run(size, work / str(size), baseline_rows, peers, repeats))
        finally:
            if workdir is None:
                shutil.rmtree(work, ignore_errors=True)
        print(table(results[-1]), flush=True)
    return results


def with_rss_growth(results, modes):
    """The JSON output; with several sizes, also how peak RSS grew from the first to the last (printed too)."""
    output = {"results": results, "modes": modes}
    if len(results) > 1:
        small, large = results[0], results[-1]
        growth = peak_rss_growth(small, large)
        output["rss_growth"] = rss_growth_check(small, large, growth)
        print(rss_growth_line(small, large, growth))
    return output


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--internal"]:
        return run_baseline_here(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    sizes = parse_sizes(parser, args.rows)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    modes = parse_modes(parser, args.modes)
    peers = Peers(names=() if args.peers == "none" else (args.peers,), rows=args.peer_rows, cache=args.peers_cache)
    try:
        one_size = "one-size" in modes
        results = measure_sizes(sizes, args.workdir, args.baseline_rows, peers, args.repeats) if one_size else []
        other = measure_other_modes(modes, args, args.workdir)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    output = with_rss_growth(results, other)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(output, indent=1))
    print(f"results written to {args.json}")
    missed = missed_targets(output) + missed_in_modes(output)
    if missed:
        print(f"targets missed: {', '.join(missed)}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
