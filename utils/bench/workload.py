"""What the benchmark generates and where it runs: fixed, so every run measures the same work."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The baselines run in a child of this command (see baselines.run_baseline), so it is named here once.
BENCHMARK_SCRIPT = PROJECT_ROOT / "utils" / "benchmark.py"

INDICATOR = "BENCH_1"
DATASET = "bench"
# The merge re-run's upstream revises every VARY_EVERY-th value, so the load has a known share to write.
VARY_EVERY = 7
# Our page size (GHO_PAGE_SIZE), set for the phases and asked for by the peers, so both make the same requests.
PAGE_SIZE = 10_000
