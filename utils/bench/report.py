"""What the command prints on stdout: one table a size and the peak-RSS growth line."""

from utils.bench.targets import TARGETS


def table(result) -> str:
    """Every step's figures, the end-to-end comparison and each target met or missed, for one size."""
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


def rss_growth_line(small, large, growth) -> str:
    return (
        f"peak RSS growth from {small['rows']:,} to {large['rows']:,} rows: x{growth:.3f} "
        f"(target <= {TARGETS['rss_growth_3x_rows']})"
    )
