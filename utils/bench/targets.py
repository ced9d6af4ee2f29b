"""The targets the pipeline must meet, and the checks of measured figures against them.

Every target is relative to a baseline measured in the same run (or a plain bound), so a slower machine
moves the pipeline and its baselines together.
"""

TARGETS = {
    "load_vs_copy_rate": 0.5,  # first load: at least half the raw COPY rate
    "merge_vs_copy_time": 3.0,  # merge re-run with 1/7 changed: within 3x the raw COPY time
    "transform_rows_per_s": 200_000,
    "peak_rss_mb": 600,
    "rss_growth_3x_rows": 1.2,
    "end_to_end_vs_to_sql": 10.0,
    "probe_skip_requests": 2,  # per dataset, for a refresh the change probe skips
    "probe_skip_vs_full_run": 0.05,  # that refresh's time over the first run's end to end
    "end_to_end_vs_dlt_best": 10.0,  # dlt's best configuration's time over our end to end
    # extract time when every request waits a fixed latency, over requests / concurrency x latency
    "latency_extract_vs_floor": 1.3,
    "per_dataset_overhead_ms": 50,  # many small datasets: --once time beyond one dataset of all their rows
}


def check(value, op, target):
    """One check as it is reported: the value, the target as `op target`, and whether it was met."""
    ok = {">=": value >= target, "<=": value <= target, "==": value == target}[op]
    return {"value": value, "target": f"{op} {target}", "met": bool(ok)}


def measured_phases(steps):
    """The steps that ran as pipeline processes (the baselines have no peak RSS of their own)."""
    return [s for s in steps if steps[s]["peak_rss_mb"] is not None]


def check_targets(steps, end_to_end, naive_seconds):
    """Every target of one size, from steps whose rates are already added (see results.summarise)."""
    raw = steps["raw_copy"]
    checks = {
        "load_vs_copy_rate": (steps["load"]["vs_raw_copy_rate"], ">=", TARGETS["load_vs_copy_rate"]),
        "merge_vs_copy_time": (
            round(steps["merge_load"]["seconds"] / raw["seconds"], 3),
            "<=",
            TARGETS["merge_vs_copy_time"],
        ),
        "unchanged_rows_written": (steps["unchanged_load"]["rows_written"], "==", 0),
        "transform_rows_per_s": (steps["transform"]["rows_per_s"], ">=", TARGETS["transform_rows_per_s"]),
        "peak_rss_mb": (max(steps[s]["peak_rss_mb"] for s in measured_phases(steps)), "<=", TARGETS["peak_rss_mb"]),
        "end_to_end_vs_to_sql": (round(naive_seconds / end_to_end, 2), ">=", TARGETS["end_to_end_vs_to_sql"]),
    }
    return {name: check(*value) for name, value in checks.items()}


def peak_rss_growth(small, large):
    """The largest ratio of a phase's peak RSS between two sizes: memory must not grow with the rows."""
    phases = measured_phases(small["steps"])
    return max(large["steps"][s]["peak_rss_mb"] / small["steps"][s]["peak_rss_mb"] for s in phases)


def rss_growth_check(small, large, growth):
    result = check(round(growth, 3), "<=", TARGETS["rss_growth_3x_rows"])
    result["sizes"] = [small["rows"], large["rows"]]
    return result


def missed_targets(output):
    """Names of every target missed in the command's output (each size's checks, then the RSS growth)."""
    missed = [name for r in output["results"] for name, c in r["checks"].items() if not c["met"]]
    if "rss_growth" in output and not output["rss_growth"]["met"]:
        missed.append("rss_growth")
    return missed


def refresh_checks(steps, end_to_end):
    """The refresh the change probe skips: a request or two for its one dataset, a small share of a full run
    (the job's whole time, the stand-in's time to answer included)."""
    probe = steps["probe_skip_refresh"]
    share = check(round(probe["seconds"] / end_to_end, 4), "<=", TARGETS["probe_skip_vs_full_run"])
    share["note"] = f"of it the stand-in answering: {probe['stand_in_seconds']:.2f}s"
    return {
        "probe_skip_requests": check(probe["requests"], "<=", TARGETS["probe_skip_requests"]),
        "probe_skip_vs_full_run": share,
    }


def peer_checks(peers, end_to_end):
    """Our end to end against dlt's best configuration; a peer not measured is a target not met."""
    dlt = [step["seconds_for_all_rows"] for name, step in peers.items() if name.startswith("dlt_")]
    if not dlt:
        target = f">= {TARGETS['end_to_end_vs_dlt_best']}"
        note = "not measured" + (f": {peers['error'].splitlines()[0]}" if peers.get("error") else " (--peers none)")
        return {"end_to_end_vs_dlt_best": {"value": None, "target": target, "met": False, "note": note}}
    ratio = round(min(dlt) / end_to_end, 2)
    return {"end_to_end_vs_dlt_best": check(ratio, ">=", TARGETS["end_to_end_vs_dlt_best"])}


def missed_in_modes(output):
    """Names of every target missed by the other modes (latency, many datasets), as `mode.check`."""
    modes = output.get("modes", {})
    return [f"{mode}.{name}" for mode, r in modes.items() for name, c in r.get("checks", {}).items() if not c["met"]]
