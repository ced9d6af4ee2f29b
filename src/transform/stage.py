"""Writing one staging file from the pages of a landing batch, streamed, typed, deduplicated.

Pages are typed in a small thread pool (Arrow's JSON reader releases the GIL)
and written as Parquet row groups as they come, so memory depends on the page
size, not on the indicator's size. Nothing is left behind on failure: the
staging file appears only on success, the rejects file on success or when too
many rows were rejected.
"""

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from src.contracts import layout, schema
from src.contracts.staging import with_content_hash
from src.errors import TooManyRejects, TransformError
from src.faultpoints import crash_point
from src.progress_bar import ProgressBar
from src.storage.disk import atomic_path
from src.transform.dedup import duplicate_positions, rewrite_without
from src.transform.pages import PageReader
from src.transform.rejects import RejectsFile

log = logging.getLogger("gho_etl.transform")

# Bump when typing rules change: a batch typed by other rules is never "identical".
TRANSFORM_VERSION = "3"
ROW_GROUP_ROWS = 128_000
# Columns whose values seldom repeat: dictionary-encoding them is work thrown away.
_DISTINCT_COLUMNS = ("id", "value", "numeric_value", "low", "high", "comments")
PARSE_THREADS = 2
# Pages read or typed ahead of the writer: enough that the parsing threads keep busy while the
# main thread writes a row group, few enough that memory stays bounded (a page is ~6 MB of JSON).
PAGES_IN_FLIGHT = 6


def content_hash(manifest) -> str:
    """What the staging file is typed from: the typing rules, the request and every page's digest."""
    digest = hashlib.sha256(TRANSFORM_VERSION.encode())
    digest.update(json.dumps(manifest.request, sort_keys=True).encode())
    for page in manifest.pages:
        digest.update(f"{page.file}:{page.sha256}:{page.rows};".encode())
    return digest.hexdigest()


def staging_writer(path, arrow_schema) -> pq.ParquetWriter:
    """A Parquet writer tuned for staging, which lives minutes and is read once, whole.

    Snappy writes and reads faster than zstd; only columns that repeat get a
    dictionary; no column statistics, since nothing filters staging. Together
    they halve the cost of writing a batch.
    """
    repeated = [name for name in arrow_schema.names if name not in _DISTINCT_COLUMNS]
    return pq.ParquetWriter(path, arrow_schema, compression="snappy", use_dictionary=repeated, write_statistics=False)


def _typed_pages(reader, pages):
    """Typed pages in order, at most a few in flight so memory stays bounded."""
    with ThreadPoolExecutor(max_workers=PARSE_THREADS, thread_name_prefix="transform") as pool:
        pending = []
        for page in pages:
            pending.append(pool.submit(reader, page))
            if len(pending) >= PAGES_IN_FLIGHT:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


class _StagingStream:
    """Row groups of about ROW_GROUP_ROWS written as typed pages arrive, and every row's key hash kept."""

    def __init__(self, writer, arrow_schema, expected_rows):
        self.writer, self.arrow_schema = writer, arrow_schema
        self.written, self.buffered = 0, []
        # One array filled in place (8 bytes a row), not pieces joined at the end: half the peak.
        self.hashes = np.empty(expected_rows, dtype=np.uint64)

    def add(self, table, page_hashes):
        if table.num_rows:
            self.buffered.append((table, page_hashes))
        if sum(t.num_rows for t, _ in self.buffered) >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self):
        table = pa.concat_tables([typed for typed, _ in self.buffered])
        self.writer.write_table(table, row_group_size=max(1, table.num_rows))
        end = self.written + table.num_rows
        if end > len(self.hashes):  # more rows than the manifest says: the count check fails the batch
            self.hashes = np.resize(self.hashes, end)
        self.hashes[self.written : end] = np.concatenate([page_hashes for _, page_hashes in self.buffered])
        self.buffered.clear()
        self.written = end
        crash_point("transform.writing_staging")

    def finish(self):
        if self.buffered or self.written == 0:
            self.buffered.append((self.arrow_schema.empty_table(), np.empty(0, dtype=np.uint64)))
            self.flush()
        return self.hashes[: self.written]


def _write_staging(temp, reader, manifest, arrow_schema, rejects, dataset_name):
    """Stream every page into `temp`; return (rows in, rows written, key hashes)."""
    rows_in = 0
    with ProgressBar(log, f"transform {dataset_name}", total=manifest.rows) as bar:
        with staging_writer(temp, arrow_schema) as writer:
            stream = _StagingStream(writer, arrow_schema, manifest.rows)
            for table, page_hashes, rejected, count in _typed_pages(reader, manifest.pages):
                rows_in += count
                rejects.add(rejected)
                stream.add(table, page_hashes)
                bar.update(count)
            hashes = stream.finish()
    return rows_in, stream.written, hashes


def stage(store, settings, dataset, batch_id, manifest, extra):
    """Type every page into the batch's staging file; return (rows in, rows staged, duplicates dropped, rejects)."""
    arrow_schema = with_content_hash(schema.arrow_schema(extra), content_hash(manifest))
    asked = manifest.request.get("indicators") or [manifest.request.get("indicator")]
    reader = PageReader(store, dataset.name, batch_id, extra, [code for code in asked if code])
    rejects = RejectsFile(store, layout.rejects_file(dataset.name, batch_id), batch_id)
    landing_batch = store.describe(layout.landing_batch(dataset.name, batch_id))
    duplicates = 0
    try:
        with store.new_file(layout.staging_file(dataset.name, batch_id)) as temp:
            rows_in, written, hashes = _write_staging(temp, reader, manifest, arrow_schema, rejects, dataset.name)
            if rows_in != manifest.rows:
                raise TransformError(
                    f"landing batch {landing_batch} holds {rows_in} rows, its manifest says {manifest.rows}"
                )
            _check_rejects(settings, dataset, batch_id, rejects, rows_in, landing_batch)
            drop = duplicate_positions(temp, hashes)
            del hashes
            if drop.size:
                with atomic_path(temp) as deduplicated:
                    written = rewrite_without(temp, deduplicated, drop, lambda path: staging_writer(path, arrow_schema))
                duplicates = int(drop.size)
            rejects.commit()
    except BaseException as exc:
        rejects.discard(exc)
        raise
    return rows_in, written, duplicates, rejects


def _check_rejects(settings, dataset, batch_id, rejects, rows_in, landing_batch):
    share = rejects.count / rows_in if rows_in else 0.0
    if share > settings.reject_threshold:
        rejects.commit()
        raise TooManyRejects(
            f"{dataset.name} batch {batch_id}: {share:.1%} of rows rejected "
            f"(limit {settings.reject_threshold:.1%}, first reason: {rejects.first}); nothing staged, "
            f"landing kept. See {rejects.where}; fix the source, raise GHO_REJECT_THRESHOLD, "
            f"or delete {landing_batch} to skip the batch"
        )
