"""Transform: every complete landing batch -> one typed staging file + rejects (`src.contracts.staging`).

The landing batch is deleted only once the staging file is in place, so a
crash at any point leaves a batch the next run finishes. The staging file
carries a content hash of its landing pages, which lets the load skip a batch
identical to the last one it applied.
"""

import logging
import time
from dataclasses import dataclass

import pyarrow.parquet as pq

from src.contracts import landing, layout
from src.contracts.results import PhaseResult
from src.errors import TransformError
from src.faultpoints import crash_point
from src.locks import phase_lock
from src.storage import open_store
from src.transform.fields import extra_columns
from src.transform.pages import PageReader, UnlistedColumns
from src.transform.stage import PARSE_THREADS, stage

log = logging.getLogger("gho_etl.transform")


@dataclass
class TransformResult:
    dataset: str
    batch_id: str
    rows_in: int
    rows_out: int
    rejected: int
    duplicates: int
    seconds: float


def run(settings, dataset, database=None) -> PhaseResult:
    """The phase as the runner calls it (transform needs no database)."""
    results = transform_dataset(settings, dataset)
    return PhaseResult(
        rows_in=sum(r.rows_in for r in results),
        rows_written=sum(r.rows_out for r in results),
        rows_rejected=sum(r.rejected for r in results),
        batches=len(results),
        details=results,
    )


def transform_dataset(settings, dataset, store=None) -> list:
    """Transform every complete landing batch of a dataset, oldest first."""
    store = store or open_store(settings)
    with phase_lock(settings, dataset.name, "transform"):
        store.sweep(layout.staging_dir(dataset.name))
        store.sweep(layout.rejects_dir(dataset.name))
        batches = landing.complete_batches(store, dataset.name)
        if not batches:
            log.info("%s: no complete landing batch to transform", dataset.name, extra={"dataset": dataset.name})
        return [transform_batch(store, settings, dataset, batch_id) for batch_id in batches]


def transform_batch(store, settings, dataset, batch_id) -> TransformResult:
    started = time.monotonic()
    staging_key = layout.staging_file(dataset.name, batch_id)
    if store.exists(staging_key):
        # Staging was written but the landing batch was not yet removed.
        store.delete_tree(layout.landing_batch(dataset.name, batch_id))
        log.info("landing batch %s was already transformed; removed it", batch_id)
        with store.local_file(staging_key) as path:
            rows = pq.ParquetFile(path).metadata.num_rows
        return TransformResult(dataset.name, batch_id, rows, rows, 0, 0, time.monotonic() - started)

    manifest = _read_manifest(store, dataset, batch_id)
    try:
        rows_in, written, duplicates, rejects = stage(store, settings, dataset, batch_id, manifest, [])
    except UnlistedColumns as exc:
        log.info(
            "%s batch %s: %s; reading every page for its fields and typing the batch again",
            dataset.name,
            batch_id,
            exc,
            extra={"dataset": dataset.name, "batch_id": batch_id},
        )
        reader = PageReader(store, dataset.name, batch_id, [])
        extra = extra_columns(manifest.pages, reader.read, PARSE_THREADS)
        rows_in, written, duplicates, rejects = stage(store, settings, dataset, batch_id, manifest, extra)
    crash_point("transform.staging_written")
    store.delete_tree(layout.landing_batch(dataset.name, batch_id))
    result = TransformResult(
        dataset.name, batch_id, rows_in, written, rejects.count, duplicates, time.monotonic() - started
    )
    _log_result(dataset, result, rejects)
    return result


def _read_manifest(store, dataset, batch_id):
    key = landing.batch_file(dataset.name, batch_id, landing.MANIFEST)
    try:
        manifest = landing.read_manifest(store, dataset.name, batch_id)
    except (OSError, ValueError) as exc:
        raise TransformError(f"landing manifest {store.describe(key)} is unreadable: {exc}") from None
    if manifest.source_count not in (None, manifest.rows):
        raise TransformError(
            f"landing batch {store.describe(layout.landing_batch(dataset.name, batch_id))} holds {manifest.rows} "
            f"rows, the source counted {manifest.source_count}"
        )
    return manifest


def _log_result(dataset, result, rejects):
    if rejects.count:
        log.warning(
            "%s batch %s: %d of %d rows rejected, first reason: %s (see %s)",
            dataset.name,
            result.batch_id,
            rejects.count,
            result.rows_in,
            rejects.first,
            rejects.where,
            extra={"dataset": dataset.name, "batch_id": result.batch_id, "rejected": rejects.count},
        )
    log.info(
        "transformed %s batch %s: %d rows in, %d staged, %d rejected, %d duplicates dropped",
        dataset.name,
        result.batch_id,
        result.rows_in,
        result.rows_out,
        result.rejected,
        result.duplicates,
        extra={
            "dataset": dataset.name,
            "batch_id": result.batch_id,
            "rows": result.rows_out,
            "rejected": result.rejected,
        },
    )
