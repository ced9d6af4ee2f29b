"""The pipeline's runs on the same generated rows: the first load into an empty table, a merge re-run with
every VARY_EVERY-th value revised upstream, a re-run with nothing changed (which must write zero rows), then
the refreshes a scheduled job makes of that unchanged data (see refreshes)."""

import shutil

from src.contracts.layout import STAGING_SUFFIX, Layout
from src.contracts.ledger import LEDGER_TABLE
from utils.bench.console import BenchmarkError, log
from utils.bench.database import count_rows, row_versions_fingerprint, rows_written_by_last_batch
from utils.bench.refreshes import measure_refreshes
from utils.bench.stand_in import serving
from utils.bench.workload import DATASET, VARY_EVERY


def measure_first_run(phases, rows, work, url):
    """Extract, transform and load into an empty table; returns a copy of the staged batch, kept so the
    baselines load exactly the rows the pipeline loaded."""
    log(f"[{rows:,} rows] starting the stand-in (generating rows)...")
    with serving(phases.env, rows):
        phases.measure("extract", "extract", rows)
        phases.measure("transform", "transform", rows)
    staged = sorted(Layout(work / "data").staging(DATASET).glob("*" + STAGING_SUFFIX))
    if len(staged) != 1:
        raise BenchmarkError(f"expected one staging batch, found {len(staged)}")
    kept = work / "same-rows.parquet"
    shutil.copy(staged[0], kept)
    phases.measure("load", "load", rows)
    phases.steps["load"]["rows_written"] = count_rows(url, DATASET)
    return kept


def measure_reruns(phases, rows, url, work):
    """The merge re-run, the no-change re-run and the unchanged refreshes, against one stand-in that revises
    every VARY_EVERY-th value."""
    log(f"  upstream revises every {VARY_EVERY}th value...")
    with serving(phases.env, rows, vary_every=VARY_EVERY) as stand_in:
        _measure_merge_rerun(phases, rows, url)
        _measure_unchanged_rerun(phases, rows, url)
        measure_refreshes(phases, stand_in, rows, url, work)


def _measure_merge_rerun(phases, rows, url):
    phases.measure("merge_extract", "extract", rows)
    phases.measure("merge_transform", "transform", rows)
    before = count_rows(url, LEDGER_TABLE)
    phases.measure("merge_load", "load", rows)
    phases.steps["merge_load"]["rows_written"] = rows_written_by_last_batch(url)
    assert count_rows(url, LEDGER_TABLE) == before + 1


def _measure_unchanged_rerun(phases, rows, url):
    """The same answer again: the load must write nothing, and no row version may change (xmin unchanged)."""
    phases.measure("unchanged_extract", "extract", rows)
    phases.measure("unchanged_transform", "transform", rows)
    xmin_before = row_versions_fingerprint(url)
    phases.measure("unchanged_load", "load", rows)
    xmin_after = row_versions_fingerprint(url)
    phases.steps["unchanged_load"]["rows_written"] = rows_written_by_last_batch(url)
    phases.steps["unchanged_load"]["row_versions_rewritten"] = 0 if xmin_before == xmin_after else "some"
