"""What the command prints on stdout: one table a size (with its refreshes and peers), the peak-RSS growth line,
and one table for each other mode."""

from utils.bench.targets import TARGETS


def table(result) -> str:
    """Every step's figures, the end-to-end comparison and each target met or missed, for one size."""
    lines = [
        f"gho-etl benchmark: {result['rows']:,} rows (25-field GHO rows, embedded PostgreSQL {result['postgresql']})",
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
    lines += rounds_lines(result)
    lines += refresh_lines(result["steps"]) + peer_lines(result["rows"], result["peers"])
    return "\n".join(lines + check_lines(result["checks"]))


def rounds_lines(result):
    """With several rounds: that the first run and baselines are medians, and every round's figures."""
    if result["rounds"] < 2:
        return []
    each = {"end to end": result["round_end_to_end_seconds"]}
    each.update({name: result["steps"][name]["round_seconds"] for name in ("raw_copy", "pandas_to_sql")})
    figures = "; ".join(f"{name} {' / '.join(f'{s:.2f}' for s in seconds)}s" for name, seconds in each.items())
    return [f"first run and baselines: medians of {result['rounds']} interleaved rounds ({figures})"]


def check_lines(checks):
    lines = ["targets:"]
    for name, check in checks.items():
        note = f"; {check['note']}" if check.get("note") else ""
        lines.append(
            f"  {'met ' if check['met'] else 'MISS'} {name}: {check['value']} (target {check['target']}{note})"
        )
    return lines


def refresh_lines(steps):
    """The unchanged refreshes: the job's own seconds, the requests the stand-in answered, how it was skipped."""
    lines = ["refreshes of unchanged data (start_scheduler.py --once, change probe on):"]
    for name in ("same_pages_refresh", "probe_skip_refresh"):
        step = steps[name]
        skipped = f"unchanged ({step['unchanged_by']})" if step["unchanged_by"] else "not skipped"
        lines.append(
            f"  {name:<20}{step['seconds']:>8.2f}s{step['requests']:>7} requests  {skipped} (of which the stand-in "
            f"answering {step['stand_in_seconds']:.2f}s; process wall time {step['wall_seconds']:.2f}s)"
        )
    return lines


def peer_lines(rows, peers):
    """The peers, each with its seconds as measured and scaled to every row; nothing when none was measured."""
    if not peers:
        return ["peers: not measured (--peers none)"]
    if "error" in peers:
        return ["peers: not measured, see the end_to_end_vs_dlt_best target"]
    every = f"seconds for {rows:,}"
    lines = [
        "peers (rest_api source on the same stand-in, merge on the natural key, into the same PostgreSQL):",
        f"  {'peer':<14}{'seconds':>9}{'rows':>11}{'rows/s':>9}{'peak RSS MB':>13}{every:>24}  loader",
    ]
    for name, step in peers.items():
        rate = round(step["rows"] / step["seconds"]) if step["seconds"] else 0
        lines.append(
            f"  {name:<14}{step['seconds']:>9.2f}{step['rows']:>11,}{rate:>9,}{step['peak_rss_mb']:>13.0f}"
            f"{step['seconds_for_all_rows']:>24.2f}  {step['loader_file_format']}"
        )
    scaled = {step["scaled_from_rows"] for step in peers.values()} - {None}
    if scaled:
        lines.append(f"  (peers measured on {min(scaled):,} rows; seconds for every row scaled from that rate)")
    return lines


def rss_growth_line(small, large, growth) -> str:
    return (
        f"peak RSS growth from {small['rows']:,} to {large['rows']:,} rows: x{growth:.3f} "
        f"(target <= {TARGETS['rss_growth_3x_rows']})"
    )
