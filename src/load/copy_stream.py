"""Streaming a staging file into a table with one binary COPY, encoded from Arrow in a thread."""

import io
import logging
import queue
import threading

import pgpq
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg2 import sql

from src.contracts import schema
from src.faultpoints import crash_point
from src.progress_bar import ProgressBar

log = logging.getLogger("gho_etl.load")

# pgpq holds the GIL while it encodes a batch (about 0.5 us a row), and the thread that hands COPY its
# data needs the GIL for every read: batches of a few thousand rows keep each wait to a few milliseconds,
# so PostgreSQL is not left waiting for data (docs/benchmark.md has what larger batches cost).
COPY_BATCH_ROWS = 5_000
# The temporary table a merge copies the batch into (dropped at commit).
STAGE_TABLE = "_gho_stage"
# Always named with its schema: a target table of the same name can never be confused with it.
STAGE = sql.Identifier("pg_temp", STAGE_TABLE)


class CopyStream(io.RawIOBase):
    """A file-like object COPY reads from, filled by a thread that encodes staging for PostgreSQL.

    Rows go in PostgreSQL's binary COPY format (encoded from Arrow by pgpq), so
    the server copies numbers and timestamps as they are instead of parsing
    text: about twice the rate of CSV. Encoding the next chunk overlaps with
    PostgreSQL storing the current one, and one COPY statement streams the
    whole batch.
    """

    def __init__(self, staging, columns, batch_id, bar):
        super().__init__()
        self._chunks = queue.Queue(maxsize=2)
        self._pending = memoryview(b"")
        self._done = False
        self._error = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._produce, args=(staging, columns, batch_id, bar), name="load-copy", daemon=True
        )
        self._thread.start()

    def _produce(self, staging, columns, batch_id, bar):
        fields = [staging.schema_arrow.field(name).remove_metadata() for name in columns]
        if batch_id is not None:
            fields.append(pa.field(schema.BATCH_COLUMN, pa.string()))
        target = pa.schema(fields)
        # The batch column holds one value: made once, sliced per chunk.
        batch_column = None if batch_id is None else pa.repeat(pa.scalar(batch_id, pa.string()), COPY_BATCH_ROWS)
        try:
            encoder = pgpq.ArrowToPostgresBinaryEncoder(target)
            self._put(encoder.write_header())
            # Row group by row group: ParquetFile.iter_batches keeps memory as it goes
            # (about 20 MB more per million rows), which would make a big batch cost more.
            for group in range(staging.num_row_groups):
                table = staging.read_row_group(group, columns=columns)
                for record_batch in table.to_batches(max_chunksize=COPY_BATCH_ROWS):
                    arrays = list(record_batch.columns)
                    if batch_column is not None:
                        arrays.append(batch_column.slice(0, record_batch.num_rows))
                    self._put(encoder.write_batch(pa.RecordBatch.from_arrays(arrays, schema=target)))
                    bar.update(record_batch.num_rows)
                del table
            self._put(encoder.finish())
        except BaseException as exc:  # handed to the reading side, which raises it
            self._error = exc
        finally:
            self._put(None)

    def _put(self, item):
        if item is not None and not len(item):
            return  # the encoder buffers small batches; an empty chunk would read as the end
        while not self._stop.is_set():
            try:
                self._chunks.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def readable(self):
        return True

    def readinto(self, target):
        while not self._pending:
            if self._done:
                return 0
            chunk = self._chunks.get()
            if chunk is None:
                self._done = True
                if self._error is not None:
                    raise self._error
                return 0
            self._pending = memoryview(chunk)
        size = min(len(target), len(self._pending))
        target[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self):
        self._stop.set()
        self._thread.join()
        super().close()


def copy_staging(cursor, staging: pq.ParquetFile, table: sql.Composable, columns, batch_id=None, freeze=False) -> int:
    """Stream staging into `table` (a qualified identifier) with one COPY; with `batch_id`, fill the batch column.

    `columns` (`TableColumns`): the staging columns read, each into the table's column of its name.
    `freeze`, only for a table created in this transaction (PostgreSQL refuses it otherwise): rows
    are written frozen and their pages all-visible, so the index build and the fingerprint scan
    check no visibility, and no later read or VACUUM rewrites every page to set hint bits or freeze.
    """
    targets = list(columns.names) + ([schema.BATCH_COLUMN] if batch_id is not None else [])
    options = sql.SQL("FORMAT binary, FREEZE" if freeze else "FORMAT binary")
    copy = sql.SQL("COPY {} ({}) FROM STDIN WITH ({})").format(
        table, sql.SQL(", ").join(map(sql.Identifier, targets)), options
    )
    with ProgressBar(log, "load: copy", total=staging.metadata.num_rows) as bar:
        stream = CopyStream(staging, list(columns.staged), batch_id, bar)
        try:
            cursor.copy_expert(copy, stream, size=1 << 20)
        finally:
            stream.close()
    crash_point("load.copied")
    return bar.count


def copy_into_stage(cursor, staging: pq.ParquetFile, columns) -> int:
    """The batch into the temporary table, whose columns have the target's names."""
    definitions = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns.pg_types().items()]
    cursor.execute(sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(STAGE, sql.SQL(", ").join(definitions)))
    return copy_staging(cursor, staging, STAGE, columns)
