"""A size's raw step figures turned into its result: rates against raw COPY, totals and the target checks."""

import statistics

from utils.bench.targets import check_targets, peer_checks, refresh_checks

PIPELINE_PHASES = ("extract", "transform", "load")


def summarise(rows, steps, peers=None, rounds_end_to_end=None):
    """The result dict of one size (its JSON shape is what logs/benchmark.json holds); the end to end is the
    median of `rounds_end_to_end` when given (see rounds), else the sum of the phases."""
    _add_rates(steps)
    naive_rate = steps["pandas_to_sql"]["rows"] / steps["pandas_to_sql"]["seconds"]
    rounds_end_to_end = rounds_end_to_end or [sum(steps[s]["seconds"] for s in PIPELINE_PHASES)]
    end_to_end = statistics.median(rounds_end_to_end)
    naive_seconds = rows / naive_rate  # measured rate; equals the measured time unless --baseline-rows capped it
    return {
        "rows": rows,
        "steps": steps,
        "rounds": len(rounds_end_to_end),
        "round_end_to_end_seconds": [round(seconds, 3) for seconds in rounds_end_to_end],
        "end_to_end_seconds": round(end_to_end, 3),
        "pandas_to_sql_seconds_for_all_rows": round(naive_seconds, 3),
        "peers": peers or {},
        "checks": {
            **check_targets(steps, end_to_end, naive_seconds),
            **refresh_checks(steps, end_to_end),
            **peer_checks(peers or {}, end_to_end),
        },
    }


def _add_rates(steps):
    """Rows per second and the share of the raw COPY rate for every step, then seconds rounded for the report.

    The raw COPY rate is taken before rounding; everything after this uses the rounded seconds.
    """
    raw = steps["raw_copy"]
    raw_rate = raw["rows"] / raw["seconds"]
    for step in steps.values():
        step["rows_per_s"] = round(step["rows"] / step["seconds"]) if step["seconds"] else None
        step["vs_raw_copy_rate"] = round(step["rows_per_s"] / raw_rate, 3) if step["rows_per_s"] else None
        step["seconds"] = round(step["seconds"], 3)
