"""Transform: complete landing batch -> typed staging Parquet + rejects, streamed page by page.

Pages are typed in a small thread pool (Arrow's JSON reader releases the GIL)
and written as Parquet row groups as they come, so memory depends on the page
size, not on the indicator's size. Duplicate natural keys are found with one
64-bit hash per row, confirmed exactly, and removed in a second pass only when
there are any. The landing batch is deleted only once the staging file is
renamed into place, so a crash at any point leaves a batch the next run
finishes. The staging file carries a content hash of its landing pages, which
lets the load skip a batch identical to the last one it applied.
"""

import hashlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from src import schema
from src.errors import TooManyRejects, TransformError
from src.extract import MANIFEST, complete_batches
from src.fast_page import NotFast, parse_page, read_whole_page
from src.faultpoints import crash_point
from src.progress import Progress
from src.records import _column_names, _is_unicode, deduplicate, records_to_frame, to_arrow  # noqa: F401
from src.storage import (
    Layout,
    atomic_output,
    atomic_path,
    phase_lock,
    read_json,
    remove_tree,
    sweep_temp_files,
)

log = logging.getLogger("gho_etl.transform")

# Bump when typing rules change: a batch typed by other rules is never "identical".
TRANSFORM_VERSION = "2"
CONTENT_HASH_KEY = b"gho_etl.content_sha256"
ROW_GROUP_ROWS = 128_000
# Columns whose values seldom repeat: dictionary-encoding them is work thrown away.
_DISTINCT_COLUMNS = ("id", "value", "numeric_value", "low", "high", "comments")
PARSE_THREADS = 2
# Pages read or typed ahead of the writer: enough that the parsing threads keep busy while the
# main thread writes a row group, few enough that memory stays bounded (a page is ~6 MB of JSON).
PAGES_IN_FLIGHT = 6
# Characters some line readers split on; escaped so one reject is one line for every reader.
_LINE_BREAKS_ESCAPED = {ord(c): f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029\x0b\x0c\x1c\x1d\x1e"}
_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)


@dataclass
class TransformResult:
    dataset: str
    batch_id: str
    rows_in: int
    rows_out: int
    rejected: int
    duplicates: int
    seconds: float


def _reject_line(record, reason, batch_id) -> str:
    line = {"batch_id": batch_id, "reason": reason, "record": record}
    text = json.dumps(line, ensure_ascii=False, default=str)
    if not _is_unicode(text):
        text = json.dumps(line, default=str)  # \u escapes keep a lone surrogate writable
    return text.translate(_LINE_BREAKS_ESCAPED) + "\n"


def _write_rejects(path, rejected, batch_id):
    with atomic_output(path, "w") as handle:
        for record, reason in rejected:
            handle.write(_reject_line(record, reason, batch_id))


class _UnlistedColumns(TransformError):
    """A page holds a field outside the GHO core that the batch's columns do not include yet."""


def _conform(table: pa.Table, target: pa.Schema) -> pa.Table:
    """Give a page's table the batch's columns (a field absent from this page is null)."""
    unknown = set(table.column_names) - set(target.names)
    if unknown:
        raise _UnlistedColumns(f"a landing page has columns the batch does not list: {sorted(unknown)}")
    arrays = [
        table.column(f.name) if f.name in table.column_names else pa.nulls(table.num_rows, f.type) for f in target
    ]
    return pa.Table.from_arrays(arrays, schema=target)


class _PageReader:
    """Reads, verifies and types one landing page (runs in worker threads)."""

    def __init__(self, batch_dir, extra_columns):
        self.batch_dir = batch_dir
        self.extra_columns = extra_columns
        self.target = schema.arrow_schema(extra_columns)

    def __call__(self, page):
        """(typed table, its key hashes, rejected records with reasons, rows read)."""
        table, rejected, count = self._typed(page)
        return table, key_hashes(table), rejected, count

    def _typed(self, page):
        path = self.batch_dir / page["file"]
        raw = _read_page(path)
        if page.get("sha256") and hashlib.sha256(raw).hexdigest() != page["sha256"]:
            raise TransformError(f"landing page {path} is corrupted (its checksum differs from the manifest's)")
        try:
            table = parse_page(raw, self.extra_columns)
        except NotFast:
            pass
        else:
            if table.num_rows != page["rows"]:
                raise TransformError(
                    f"landing page {path} holds {table.num_rows} rows, its manifest says {page['rows']}"
                )
            return table, [], page["rows"]
        records = _page_records(path, raw)
        if len(records) != page["rows"]:
            raise TransformError(f"landing page {path} holds {len(records)} rows, its manifest says {page['rows']}")
        frame, rejected = records_to_frame(records)
        return _conform(to_arrow(frame), self.target), rejected, len(records)


def _read_page(path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TransformError(f"landing page {path} is unreadable: {exc.strerror}") from None


def _page_records(path, raw) -> list:
    """The page's rows as Python objects: the json module, for what Arrow cannot read."""
    try:
        return json.loads(raw).get("value", [])
    except (ValueError, AttributeError) as exc:
        raise TransformError(f"landing page {path} is unreadable: {exc}") from None


_FIELD_SCAN_OPTIONS = pajson.ParseOptions(newlines_in_values=True)


def _page_fields(path) -> list:
    """The field names of a landing page's rows, read by Arrow (no Python object per value)."""
    raw = _read_page(path)
    try:
        table = read_whole_page(raw, _FIELD_SCAN_OPTIONS)
        row_type = table.schema.field("value").type.value_type
        if table.num_rows == 1 and pa.types.is_struct(row_type):
            return [row_type.field(i).name for i in range(row_type.num_fields)]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError, AttributeError):
        pass  # rows of mixed shapes or types: the json module reads those
    return [str(k) for r in _page_records(path, raw) if isinstance(r, dict) for k in r]


def _extra_columns(batch_dir, manifest, scan=False) -> list:
    """The batch's extra columns: fields outside the GHO core, which become text columns.

    Extract does not record field names (that would parse every page twice);
    landing batches of older versions list them per page. Without `scan`,
    pages that list none are taken to hold core fields only; with it, every
    page's field names are read (on the parsing threads), which transform does
    once when a page shows a field it did not expect.
    """
    fields = {}
    if scan:
        paths = [batch_dir / page["file"] for page in manifest["pages"]]
        with ThreadPoolExecutor(max_workers=PARSE_THREADS, thread_name_prefix="transform-fields") as pool:
            for names in pool.map(_page_fields, paths):
                fields.update(dict.fromkeys(names))
    else:
        for page in manifest["pages"]:
            fields.update(dict.fromkeys(page.get("fields", [])))
    names = _column_names(fields)
    return sorted({name for name in names.values() if name not in schema.CORE_COLUMNS})


def content_hash(manifest) -> str:
    digest = hashlib.sha256(TRANSFORM_VERSION.encode())
    digest.update(json.dumps(manifest.get("request"), sort_keys=True).encode())
    for page in manifest["pages"]:
        digest.update(f"{page['file']}:{page.get('sha256')}:{page['rows']};".encode())
    return digest.hexdigest()


def _value_hashes(array) -> np.ndarray:
    """One stable 64-bit hash per row of a column, computed on its distinct values only."""
    encoded = pc.dictionary_encode(array)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    distinct = [
        int.from_bytes(hashlib.blake2b(repr(v).encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
        for v in encoded.dictionary.to_pylist()
    ]
    table = np.array(distinct + [int(_NULL_HASH)], dtype=np.uint64)
    indices = pc.fill_null(encoded.indices, len(distinct)).to_numpy(zero_copy_only=False)
    return table[indices]


def key_hashes(table: pa.Table) -> np.ndarray:
    combined = np.zeros(table.num_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in schema.NATURAL_KEY:
            combined = combined * np.uint64(0x100000001B3) ^ _value_hashes(table.column(column))
    return combined


def _duplicate_positions(staged_path, hashes: np.ndarray) -> np.ndarray:
    """Positions to drop so each natural key keeps its row with the latest `date` (later rows win ties)."""
    ordered = np.sort(hashes)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    del ordered
    if repeated.size == 0:
        return np.empty(0, dtype=np.int64)
    candidates = np.flatnonzero(np.isin(hashes, repeated))
    columns = list(schema.NATURAL_KEY) + ["date"]
    parts, offset = [], 0
    staged = pq.ParquetFile(staged_path)
    for group in range(staged.num_row_groups):
        chunk = staged.read_row_group(group, columns=columns)
        local = candidates[(candidates >= offset) & (candidates < offset + chunk.num_rows)] - offset
        if local.size:
            frame = chunk.take(pa.array(local)).to_pandas()
            frame.index = local + offset
            parts.append(frame)
        offset += chunk.num_rows
    frame = pd.concat(parts)
    ordered_frame = frame.sort_index().sort_values("date", kind="stable", na_position="first")
    kept = ordered_frame.drop_duplicates(list(schema.NATURAL_KEY), keep="last").index
    return np.setdiff1d(frame.index.to_numpy(), kept.to_numpy())


def staging_writer(path, arrow_schema) -> pq.ParquetWriter:
    """A Parquet writer tuned for staging, which lives minutes and is read once, whole.

    Snappy writes and reads faster than zstd; only columns that repeat get a
    dictionary; no column statistics, since nothing filters staging. Together
    they halve the cost of writing a batch.
    """
    repeated = [name for name in arrow_schema.names if name not in _DISTINCT_COLUMNS]
    return pq.ParquetWriter(path, arrow_schema, compression="snappy", use_dictionary=repeated, write_statistics=False)


def _rewrite_without(source, target, drop: np.ndarray, arrow_schema) -> int:
    staged = pq.ParquetFile(source)
    offset, written = 0, 0
    with staging_writer(target, arrow_schema) as writer:
        for group in range(staged.num_row_groups):
            chunk = staged.read_row_group(group)
            keep = ~np.isin(np.arange(offset, offset + chunk.num_rows), drop)
            kept = chunk.filter(pa.array(keep))
            writer.write_table(kept)
            offset += chunk.num_rows
            written += kept.num_rows
    return written


class _RejectsFile:
    """Rejects streamed to a temporary file, put in place by `commit` (kept even when the batch fails)."""

    def __init__(self, path, batch_id):
        self.path, self.batch_id, self.count, self.first = path, batch_id, 0, None
        self._context = self._handle = None

    def add(self, rejected):
        if not rejected:
            return
        if self._handle is None:
            self._context = atomic_output(self.path, "w")
            self._handle = self._context.__enter__()
        for record, reason in rejected:
            self._handle.write(_reject_line(record, reason, self.batch_id))
        self.count += len(rejected)
        self.first = self.first or rejected[0][1]

    def commit(self):
        if self._context is not None:
            self._context.__exit__(None, None, None)
            self._context = None

    def discard(self, exc):
        if self._context is not None:
            self._context.__exit__(type(exc), exc, exc.__traceback__)
            self._context = None


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


def _write_staging(temp, reader, manifest, arrow_schema, rejects, dataset_name):
    """Stream every page into `temp`; return (rows in, rows written, key hashes)."""
    rows_in, written, buffered = 0, 0, []
    # One array filled in place (8 bytes a row), not pieces joined at the end: half the peak.
    hashes = np.empty(manifest["rows"], dtype=np.uint64)
    with Progress(log, f"transform {dataset_name}", total=manifest["rows"]) as bar:
        with staging_writer(temp, arrow_schema) as writer:

            def flush():
                nonlocal written, hashes
                table = pa.concat_tables([typed for typed, _ in buffered])
                writer.write_table(table, row_group_size=max(1, table.num_rows))
                end = written + table.num_rows
                if end > len(hashes):  # more rows than the manifest says: the count check fails the batch
                    hashes = np.resize(hashes, end)
                hashes[written:end] = np.concatenate([page_hashes for _, page_hashes in buffered])
                buffered.clear()
                written = end
                crash_point("transform.writing_staging")

            for table, page_hashes, rejected, count in _typed_pages(reader, manifest["pages"]):
                rows_in += count
                rejects.add(rejected)
                if table.num_rows:
                    buffered.append((table, page_hashes))
                if sum(t.num_rows for t, _ in buffered) >= ROW_GROUP_ROWS:
                    flush()
                bar.update(count)
            if buffered or written == 0:
                buffered.append((arrow_schema.empty_table(), np.empty(0, dtype=np.uint64)))
                flush()
    return rows_in, written, hashes[:written]


def _stage(settings, dataset, batch_dir, manifest, extra, staging_file, rejects_file):
    """Type every page into `staging_file`; return (rows in, rows staged, duplicates dropped, rejects).

    Nothing is left behind on failure: the staging file appears only on
    success, the rejects file on success or when too many rows were rejected.
    """
    batch_id = batch_dir.name
    arrow_schema = schema.arrow_schema(extra).with_metadata({CONTENT_HASH_KEY: content_hash(manifest).encode()})
    reader = _PageReader(batch_dir, extra)
    rejects = _RejectsFile(rejects_file, batch_id)
    duplicates = 0
    try:
        with atomic_path(staging_file) as temp:
            rows_in, written, hashes = _write_staging(temp, reader, manifest, arrow_schema, rejects, dataset.name)
            if rows_in != manifest["rows"]:
                raise TransformError(
                    f"landing batch {batch_dir} holds {rows_in} rows, its manifest says {manifest['rows']}"
                )
            share = rejects.count / rows_in if rows_in else 0.0
            if share > settings.reject_threshold:
                rejects.commit()
                raise TooManyRejects(
                    f"{dataset.name} batch {batch_id}: {share:.1%} of rows rejected "
                    f"(limit {settings.reject_threshold:.1%}, first reason: {rejects.first}); nothing staged, "
                    f"landing kept. See {rejects_file}; fix the source, raise GHO_REJECT_THRESHOLD, "
                    f"or delete {batch_dir} to skip the batch"
                )
            drop = _duplicate_positions(temp, hashes)
            del hashes
            if drop.size:
                with atomic_path(temp) as deduplicated:
                    written = _rewrite_without(temp, deduplicated, drop, arrow_schema)
                duplicates = int(drop.size)
            rejects.commit()
    except BaseException as exc:
        rejects.discard(exc)
        raise
    return rows_in, written, duplicates, rejects


def transform_batch(settings, dataset, batch_dir) -> TransformResult:
    layout = Layout(settings.data_dir)
    batch_id = batch_dir.name
    started = time.monotonic()
    staging_file = layout.staging_file(dataset.name, batch_id)
    if staging_file.exists():
        # Staging was written but the landing batch was not yet removed.
        remove_tree(batch_dir)
        log.info("landing batch %s was already transformed; removed it", batch_id)
        rows = pq.ParquetFile(staging_file).metadata.num_rows
        return TransformResult(dataset.name, batch_id, rows, rows, 0, 0, time.monotonic() - started)

    try:
        manifest = read_json(batch_dir / MANIFEST)
    except (OSError, ValueError) as exc:
        raise TransformError(f"landing manifest {batch_dir / MANIFEST} is unreadable: {exc}") from None
    if manifest.get("source_count") not in (None, manifest["rows"]):
        raise TransformError(
            f"landing batch {batch_dir} holds {manifest['rows']} rows, the source counted {manifest['source_count']}"
        )
    rejects_file = layout.rejects_file(dataset.name, batch_id)
    try:
        rows_in, written, duplicates, rejects = _stage(
            settings, dataset, batch_dir, manifest, _extra_columns(batch_dir, manifest), staging_file, rejects_file
        )
    except _UnlistedColumns as exc:
        log.info(
            "%s batch %s: %s; reading every page for its fields and typing the batch again",
            dataset.name,
            batch_id,
            exc,
            extra={"dataset": dataset.name, "batch_id": batch_id},
        )
        extra = _extra_columns(batch_dir, manifest, scan=True)
        rows_in, written, duplicates, rejects = _stage(
            settings, dataset, batch_dir, manifest, extra, staging_file, rejects_file
        )
    crash_point("transform.staging_written")
    remove_tree(batch_dir)
    result = TransformResult(
        dataset.name, batch_id, rows_in, written, rejects.count, duplicates, time.monotonic() - started
    )
    if rejects.count:
        log.warning(
            "%s batch %s: %d of %d rows rejected, first reason: %s (see %s)",
            dataset.name,
            batch_id,
            rejects.count,
            rows_in,
            rejects.first,
            rejects_file,
            extra={"dataset": dataset.name, "batch_id": batch_id, "rejected": rejects.count},
        )
    log.info(
        "transformed %s batch %s: %d rows in, %d staged, %d rejected, %d duplicates dropped",
        dataset.name,
        batch_id,
        result.rows_in,
        result.rows_out,
        result.rejected,
        duplicates,
        extra={"dataset": dataset.name, "batch_id": batch_id, "rows": result.rows_out, "rejected": result.rejected},
    )
    return result


def transform_dataset(settings, dataset) -> list:
    """Transform every complete landing batch of a dataset, oldest first."""
    layout = Layout(settings.data_dir)
    with phase_lock(layout, dataset.name, "transform"):
        sweep_temp_files(layout.staging(dataset.name))
        sweep_temp_files(layout.rejects(dataset.name))
        batches = complete_batches(layout, dataset.name)
        if not batches:
            log.info("%s: no complete landing batch to transform", dataset.name, extra={"dataset": dataset.name})
        return [transform_batch(settings, dataset, batch_dir) for batch_dir in batches]
