"""The benchmark must never rot: a tiny run, end to end, with every step and check reported."""

import json

from tests.helpers import run_script

STEPS = {
    "extract",
    "transform",
    "load",
    "raw_copy",
    "pandas_to_sql",
    "merge_extract",
    "merge_transform",
    "merge_load",
    "unchanged_extract",
    "unchanged_transform",
    "unchanged_load",
}
CHECKS = {
    "load_vs_copy_rate",
    "merge_vs_copy_time",
    "unchanged_rows_written",
    "transform_rows_per_s",
    "peak_rss_mb",
    "end_to_end_vs_to_sql",
}


def test_tiny_benchmark_reports_every_step(tmp_path, script_env):
    output = tmp_path / "benchmark.json"
    result = run_script("utils/benchmark.py", "--rows", "20000", "--json", str(output), env=script_env, timeout=600)
    assert result.returncode == 0, result.stderr
    [run] = json.loads(output.read_text())["results"]
    steps = run["steps"]
    assert set(steps) == STEPS and set(run["checks"]) == CHECKS
    assert all(step["seconds"] > 0 and step["rows_per_s"] > 0 for step in steps.values())
    phases = [name for name in STEPS if name not in ("raw_copy", "pandas_to_sql")]
    assert all(40 < steps[name]["peak_rss_mb"] < 2000 for name in phases)
    assert steps["load"]["rows_written"] == 20000
    assert steps["merge_load"]["rows_written"] == len(range(0, 20000, 7))  # every 7th value revised
    assert steps["unchanged_load"]["rows_written"] == 0
    assert steps["unchanged_load"]["row_versions_rewritten"] == 0
    assert run["checks"]["unchanged_rows_written"]["met"]
    assert "x raw COPY rate" in result.stdout and "targets:" in result.stdout


def test_benchmark_refuses_bad_sizes(script_env):
    result = run_script("utils/benchmark.py", "--rows", "ten", env=script_env)
    assert result.returncode == 2 and "--rows wants whole numbers" in result.stderr
