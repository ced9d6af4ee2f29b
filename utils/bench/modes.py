"""The benchmark's modes, each a measurement of its own in the same run: one-size (the pipeline against raw COPY,
pandas.to_sql and the peers, at each --rows size), latency (an extract from a server that waits before every
answer) and many-datasets (the cost of each dataset beyond its rows). Their command-line options are here so
utils/benchmark.py stays the command line of the one-size mode plus a list of modes.
"""

import shutil
import tempfile
from pathlib import Path

from utils.bench import latency
from utils.bench.many_datasets import measure_many_datasets
from utils.bench.many_datasets import table as many_table

MODES = ("one-size", "latency", "many-datasets")


def add_mode_arguments(parser):
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"which modes to run, a comma list of {', '.join(MODES)} (default all)",
    )
    parser.add_argument(
        "--latency", type=float, default=0.5, help="latency mode: seconds every request waits (default 0.5)"
    )
    parser.add_argument(
        "--latency-rows", type=int, default=40_000, help="latency mode: rows of its indicator (default 40000)"
    )
    parser.add_argument(
        "--latency-page-size", type=int, default=1_000, help="latency mode: GHO_PAGE_SIZE (default 1000)"
    )
    parser.add_argument("--datasets", type=int, default=200, help="many-datasets mode: datasets (default 200)")
    parser.add_argument(
        "--dataset-rows", type=int, default=2_000, help="many-datasets mode: rows of each dataset (default 2000)"
    )


def parse_modes(parser, text):
    """The --modes list; an unknown one ends the command with exit 2 through parser.error."""
    modes = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown or not modes:
        parser.error(f"--modes wants a comma list of {', '.join(MODES)}, got {text!r}")
    return modes


def measure_other_modes(modes, args, workdir):
    """{mode: result} for the latency and many-datasets modes asked for, each table printed once it is done."""
    work = workdir or Path(tempfile.mkdtemp(prefix="gho-etl-bench-modes-"))
    results = {}
    try:
        if "latency" in modes:
            results["latency"] = latency.measure_latency(
                work / "latency", args.latency, args.latency_rows, args.latency_page_size
            )
            print(latency.table(results["latency"]), flush=True)
        if "many-datasets" in modes:
            results["many_datasets"] = measure_many_datasets(work / "many", args.datasets, args.dataset_rows)
            print(many_table(results["many_datasets"]), flush=True)
    finally:
        if workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return results
