"""The benchmark must never rot: a tiny run, end to end, with every step and check reported."""

import importlib.util
import json
import statistics

import psycopg2
import pytest

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
    "same_pages_refresh",
    "probe_skip_refresh",
}
CHECKS = {
    "load_vs_copy_rate",
    "merge_vs_copy_time",
    "unchanged_rows_written",
    "transform_rows_per_s",
    "peak_rss_mb",
    "end_to_end_vs_to_sql",
    "probe_skip_requests",
    "probe_skip_vs_full_run",
    "end_to_end_vs_dlt_best",
}


TINY_MODES = ["--latency", "0.05", "--latency-rows", "5000", "--latency-page-size", "500"]
TINY_MODES += ["--datasets", "5", "--dataset-rows", "200"]


def test_tiny_benchmark_reports_every_step_of_every_mode(tmp_path, script_env):
    """Every mode in one tiny run. The dlt peer has its own test below; here its cache folder cannot be made,
    which must cost the peer alone, not the figures measured before it."""
    output = tmp_path / "benchmark.json"
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    command = ["--rows", "20000", "--peers-cache", str(not_a_folder / "cache"), "--json", str(output), *TINY_MODES]
    result = run_script("utils/benchmark.py", *command, env=script_env, timeout=600)
    assert result.returncode == 0, result.stderr
    everything = json.loads(output.read_text())
    [run] = everything["results"]
    steps = run["steps"]
    assert set(steps) == STEPS and set(run["checks"]) == CHECKS
    assert all(step["seconds"] > 0 and step["rows_per_s"] > 0 for step in steps.values())
    # The first run and its baselines: three interleaved rounds, each on an empty database, reported as medians.
    assert run["rounds"] == 3 and len(run["round_end_to_end_seconds"]) == 3
    assert run["end_to_end_seconds"] == round(statistics.median(run["round_end_to_end_seconds"]), 3)
    for name in ("extract", "transform", "load", "raw_copy", "pandas_to_sql"):
        assert len(steps[name]["round_seconds"]) == 3
        assert steps[name]["seconds"] == round(statistics.median(steps[name]["round_seconds"]), 3)
    assert "round_seconds" not in steps["merge_load"]  # the re-runs run once, on the last round's table
    assert "medians of 3 interleaved rounds" in result.stdout
    phases = [name for name in STEPS if name not in ("raw_copy", "pandas_to_sql")]
    assert all(40 < steps[name]["peak_rss_mb"] < 2000 for name in phases)
    assert steps["load"]["rows_written"] == 20000
    assert steps["merge_load"]["rows_written"] == len(range(0, 20000, 7))  # every 7th value revised
    assert steps["unchanged_load"]["rows_written"] == 0
    assert steps["unchanged_load"]["row_versions_rewritten"] == 0
    assert run["checks"]["unchanged_rows_written"]["met"]
    # The unchanged refreshes as a scheduled job makes them: a full download of the same pages, then one probe.
    assert steps["same_pages_refresh"]["unchanged_by"] == "same pages"
    assert steps["same_pages_refresh"]["requests"] >= 20000 // 10000 + 1  # the pages, then the final $top=0 count
    assert steps["probe_skip_refresh"]["unchanged_by"] == "probe"
    assert steps["probe_skip_refresh"]["requests"] == 1 and run["checks"]["probe_skip_requests"]["met"]
    assert steps["same_pages_refresh"]["rows_written"] == steps["probe_skip_refresh"]["rows_written"] == 0
    # A peer not measured is a target not met, so --check can never pass without it.
    assert "cannot make the peers' cache folder" in run["peers"]["error"]
    assert run["checks"]["end_to_end_vs_dlt_best"]["met"] is False
    assert run["checks"]["end_to_end_vs_dlt_best"]["note"].startswith("not measured: cannot make")
    assert "x raw COPY rate" in result.stdout and "targets:" in result.stdout
    assert "targets missed:" in result.stdout and "end_to_end_vs_dlt_best" in result.stdout

    latency = everything["modes"]["latency"]
    # The floor's requests are the extract's own count, and they are all the stand-in answered.
    assert latency["requests"] == latency["stand_in_requests"] >= 5000 // 500 + 1  # the pages, the final count
    assert latency["floor_seconds"] == round(latency["requests"] / latency["concurrency"] * 0.05, 3)
    assert 1 <= latency["most_in_flight"] <= latency["concurrency"]
    assert set(latency["checks"]) == {"latency_extract_vs_floor"}
    assert "gho-etl latency:" in result.stdout

    many = everything["modes"]["many_datasets"]
    assert many["datasets"] == 5 and many["checks"]["datasets_recorded"]["met"]
    assert many["checks"]["unchanged_rows_written"]["met"]
    assert "gho-etl many datasets:" in result.stdout


def test_benchmark_refuses_bad_sizes_and_modes(script_env):
    result = run_script("utils/benchmark.py", "--rows", "ten", env=script_env)
    assert result.returncode == 2 and "--rows wants whole numbers" in result.stderr
    result = run_script("utils/benchmark.py", "--modes", "one-size,fast", env=script_env)
    assert result.returncode == 2 and "--modes wants a comma list" in result.stderr
    result = run_script("utils/benchmark.py", "--repeats", "0", env=script_env)
    assert result.returncode == 2 and "--repeats must be at least 1" in result.stderr


def test_dlt_peer_runs_from_its_own_environment_and_loads_every_row(tmp_path, database_url):
    """The peer's environment is built from its pinned file (about 15 s, once) and reused while the file is
    unchanged; dlt loads exactly the rows the stand-in served, with each loader, and never enters our venv."""
    from utils.bench.peers.environment import HASH_FILE, peer_python
    from utils.bench.peers.measure import measure_dlt

    cache = tmp_path / "cache"
    peers = measure_dlt(cache, database_url, 20000, 3000, tmp_path / "work")
    assert set(peers) == {"dlt_csv", "dlt_default"}
    assert peers["dlt_csv"]["loader_file_format"] == "csv,sql"  # the rows by COPY, then the merge's SQL
    assert peers["dlt_default"]["loader_file_format"] == "insert_values,sql"
    for peer in peers.values():
        assert peer["rows"] == 3000 and peer["scaled_from_rows"] == 3000
        assert peer["seconds_for_all_rows"] == pytest.approx(peer["seconds"] * 20000 / 3000, abs=0.01)
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT (spatial_dim, time_dim, dim1)) FROM dlt_csv.bench")
        assert cursor.fetchone() == (3000, 3000)
    connection.close()
    marker = next(cache.glob("dlt-*")) / HASH_FILE
    built = marker.stat().st_mtime_ns
    assert peer_python(cache).exists() and marker.stat().st_mtime_ns == built  # reused, not rebuilt
    assert importlib.util.find_spec("dlt") is None  # our own environment has no dlt
