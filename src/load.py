"""Load: staging Parquet -> PostgreSQL, one transaction per batch, exactly once.

Each batch is streamed with one binary COPY (encoded from Arrow in bulk) into
a temporary table and applied to the target with one set-based statement; an
empty target, or replace mode, takes the COPY directly. A table created by the
load gets its unique index after the COPY, built in one sorted pass. A batch whose content
hash equals the last one applied to the dataset is skipped without touching
the table, and a merge rewrites only rows whose data changed. The same transaction records the batch
in the `etl_batches` ledger, so a batch whose commit happened is never applied
again, whatever crashed afterwards; the staging file is deleted only after the
commit. A per-dataset advisory lock keeps two loads of one dataset apart.
"""

import io
import logging
import queue
import threading
import time
from dataclasses import dataclass

import pgpq
import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg2 import sql

from src import schema
from src.errors import DatabaseUnavailable, LoadError
from src.faultpoints import crash_point
from src.progress import Progress
from src.storage import Layout, phase_lock
from src.transform import CONTENT_HASH_KEY

log = logging.getLogger("gho_etl.load")

LEDGER_TABLE = "etl_batches"
COPY_BATCH_ROWS = 50_000
STAGE_TABLE = "_gho_stage"
FILLFACTOR = 85
# Session memory for one load: the temp table stays in memory, the
# unchanged-row filter hashes in memory instead of spilling to disk, and a new
# table's unique index is sorted in memory.
SESSION_SETTINGS = {"temp_buffers": "256MB", "work_mem": "256MB", "maintenance_work_mem": "256MB"}


@dataclass
class LoadResult:
    dataset: str
    batch_id: str
    table: str
    rows_staged: int
    inserted: int
    updated: int
    skipped: bool
    seconds: float


def lock_key(name: str) -> str:
    return f"gho-etl:{name}"


def ensure_ledger(connection) -> None:
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [lock_key("ddl")])
        cursor.execute(sql.SQL("""CREATE TABLE IF NOT EXISTS {} (
                    dataset text NOT NULL,
                    batch_id text NOT NULL,
                    table_name text NOT NULL,
                    mode text NOT NULL,
                    rows_staged bigint NOT NULL,
                    rows_inserted bigint NOT NULL,
                    rows_updated bigint NOT NULL,
                    loaded_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (dataset, batch_id))""").format(sql.Identifier(LEDGER_TABLE)))
        # Added after the first release: older ledgers gain them in place.
        cursor.execute(
            sql.SQL(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS content_hash text, "
                "ADD COLUMN IF NOT EXISTS skipped boolean NOT NULL DEFAULT false, "
                "ADD COLUMN IF NOT EXISTS table_rows bigint"
            ).format(sql.Identifier(LEDGER_TABLE))
        )


def _table_columns(cursor, table) -> dict:
    cursor.execute(
        """SELECT column_name, data_type FROM information_schema.columns
           WHERE table_schema = current_schema() AND table_name = %s""",
        [table],
    )
    return dict(cursor.fetchall())


def _index_name(table) -> str:
    return f"{table[:50]}_natural_key"


def ensure_natural_key(cursor, table: str) -> None:
    cursor.execute(
        sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({}) NULLS NOT DISTINCT").format(
            sql.Identifier(_index_name(table)),
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, schema.NATURAL_KEY)),
        )
    )


def ensure_table(cursor, table: str, columns: list) -> str:
    """Create the target table or evolve it to hold `columns`; refuse hand-made type changes.

    Returns "created", "evolved" (columns added) or "ready". A created table has
    no unique index yet: the caller fills it and then calls `ensure_natural_key`
    in the same transaction, since building an index over loaded rows takes a
    fraction of the time of maintaining it row by row. An existing table gets
    its index back here if it was dropped, before any row is merged.
    """
    existing = _table_columns(cursor, table)
    if not existing:
        definitions = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(schema.pg_type(c))) for c in columns]
        definitions += [
            sql.SQL("{} text NOT NULL").format(sql.Identifier(schema.BATCH_COLUMN)),
            sql.SQL("{} timestamptz NOT NULL DEFAULT now()").format(sql.Identifier(schema.LOADED_AT_COLUMN)),
        ]
        # Room on each page lets a merge update a row in place (a HOT update: no index write).
        cursor.execute(
            sql.SQL("CREATE TABLE {} ({}) WITH (fillfactor = {})").format(
                sql.Identifier(table), sql.SQL(", ").join(definitions), sql.Literal(FILLFACTOR)
            )
        )
        log.info("created table %s", table, extra={"table": table})
        return "created"
    state = "ready"
    wanted = {c: schema.pg_type(c) for c in columns}
    wanted[schema.BATCH_COLUMN] = "text"
    wanted[schema.LOADED_AT_COLUMN] = "timestamp with time zone"
    for column, pg_type in wanted.items():
        found = existing.get(column)
        if found is None:
            state = "evolved"
            cursor.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                    sql.Identifier(table), sql.Identifier(column), sql.SQL(pg_type)
                )
            )
            log.warning(
                "schema evolution: added column %s %s to table %s",
                column,
                pg_type,
                table,
                extra={"table": table, "column": column},
            )
        elif found != pg_type:
            raise LoadError(
                f"table {table}: column {column} is {found}, expected {pg_type} "
                "(changed by hand?); restore its type, or rename the table to reload from scratch"
            )
    ensure_natural_key(cursor, table)
    return state


class _CopyStream(io.RawIOBase):
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
        # The batch column holds one value: made once, sliced per chunk (a Python list per chunk
        # took 25 ms for 50,000 rows).
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


def _copy(cursor, staging: pq.ParquetFile, table, columns: list, batch_id=None) -> int:
    """Stream staging into `table` with one COPY; with `batch_id`, also fill the batch column."""
    targets = columns + ([schema.BATCH_COLUMN] if batch_id is not None else [])
    copy = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, targets))
    )
    with Progress(log, "load: copy", total=staging.metadata.num_rows) as bar:
        stream = _CopyStream(staging, columns, batch_id, bar)
        try:
            cursor.copy_expert(copy, stream, size=1 << 20)
        finally:
            stream.close()
    crash_point("load.copied")
    return bar.count


def _copy_into_stage(cursor, staging: pq.ParquetFile, columns: list) -> int:
    definitions = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(schema.pg_type(c))) for c in columns]
    cursor.execute(
        sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
            sql.Identifier(STAGE_TABLE), sql.SQL(", ").join(definitions)
        )
    )
    return _copy(cursor, staging, STAGE_TABLE, columns)


def _is_empty(cursor, table) -> bool:
    cursor.execute(sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table)))
    return cursor.fetchone()[0]


def _same_key(left, right) -> sql.Composed:
    """Natural-key equality that treats NULLs as equal (like the NULLS NOT DISTINCT index) and
    that PostgreSQL can hash: each part compares the value with NULL mapped to a filler, and
    whether it is NULL, so a real value equal to the filler never matches a NULL."""
    parts = []
    for column in schema.NATURAL_KEY:
        filler = sql.Literal(-(2**31) if schema.pg_type(column) == "integer" else "")
        parts.append(
            sql.SQL("coalesce({l}.{c}, {f}) = coalesce({r}.{c}, {f}) AND ({l}.{c} IS NULL) = ({r}.{c} IS NULL)").format(
                l=sql.Identifier(left), r=sql.Identifier(right), c=sql.Identifier(column), f=filler
            )
        )
    return sql.SQL(" AND ").join(parts)


def _apply(cursor, dataset, staging, columns, batch_id) -> tuple:
    """Apply a staging batch to the target by the dataset's mode; return (inserted, updated)."""
    table = sql.Identifier(dataset.table)
    if dataset.mode == "replace":
        cursor.execute(sql.SQL("DELETE FROM {}").format(table))
        return _copy(cursor, staging, dataset.table, columns, batch_id), 0
    if _is_empty(cursor, dataset.table):
        # Nothing to merge with and staging holds each key once: a plain COPY.
        return _copy(cursor, staging, dataset.table, columns, batch_id), 0
    _copy_into_stage(cursor, staging, columns)
    target_columns = columns + [schema.BATCH_COLUMN, schema.LOADED_AT_COLUMN]
    insert = sql.SQL("INSERT INTO {} AS t ({}) SELECT {}, %s, now() FROM {} AS s").format(
        table,
        sql.SQL(", ").join(map(sql.Identifier, target_columns)),
        sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in columns),
        sql.Identifier(STAGE_TABLE),
    )
    key = sql.SQL(", ").join(map(sql.Identifier, schema.NATURAL_KEY))
    if dataset.mode == "append":
        insert += sql.SQL(" WHERE NOT EXISTS (SELECT 1 FROM {} AS o WHERE {})").format(table, _same_key("o", "s"))
        conflict = sql.SQL(" ON CONFLICT ({}) DO NOTHING").format(key)
    else:
        # merge: rewrite only rows whose data changed. GHO's Id is not stable,
        # so a new Id alone is not a change.
        data_columns = [c for c in columns if c not in schema.NATURAL_KEY]
        compared = [c for c in data_columns if c != "id"]
        assignments = [
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
            for c in data_columns + [schema.BATCH_COLUMN, schema.LOADED_AT_COLUMN]
        ]
        changed = sql.SQL("(t.{}) IS DISTINCT FROM (EXCLUDED.{})").format(
            sql.SQL(", t.").join(map(sql.Identifier, compared)),
            sql.SQL(", EXCLUDED.").join(map(sql.Identifier, compared)),
        )
        conflict = sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {} WHERE {}").format(
            key, sql.SQL(", ").join(assignments), changed
        )
        # Rows already in the table exactly as staged are dropped before the
        # upsert by one hash anti-join, so only new and changed rows pay for
        # an index probe. ON CONFLICT still decides for every row that is left.
        unchanged = sql.SQL("(o.{}) IS NOT DISTINCT FROM (s.{})").format(
            sql.SQL(", o.").join(map(sql.Identifier, compared)),
            sql.SQL(", s.").join(map(sql.Identifier, compared)),
        )
        insert += sql.SQL(" WHERE NOT EXISTS (SELECT 1 FROM {} AS o WHERE {} AND {})").format(
            table, _same_key("o", "s"), unchanged
        )
    # xmax is 0 on a freshly inserted row version and set on an updated one.
    counted = sql.SQL(
        "WITH written AS ({} RETURNING (t.xmax = 0) AS inserted) "
        "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written"
    ).format(insert + conflict)
    cursor.execute(counted, [batch_id])
    inserted, updated = cursor.fetchone()
    return inserted, updated


def _last_applied(cursor, dataset):
    """(content hash, table, mode, rows in the table) after the dataset's latest batch, or None."""
    cursor.execute(
        sql.SQL(
            "SELECT content_hash, table_name, mode, table_rows FROM {} WHERE dataset = %s "
            "ORDER BY loaded_at DESC, batch_id DESC LIMIT 1"
        ).format(sql.Identifier(LEDGER_TABLE)),
        [dataset.name],
    )
    return cursor.fetchone()


def _count(cursor, table) -> int:
    cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
    return cursor.fetchone()[0]


def _unchanged_since(cursor, dataset, content) -> bool:
    """True when `content` is what was last applied and the table still holds what that left.

    The row count catches rows deleted or added by hand, so a repair is never skipped.
    """
    last = _last_applied(cursor, dataset)
    if not content or last is None or last[:3] != (content, dataset.table, dataset.mode):
        return False
    return last[3] == _count(cursor, dataset.table)


def _rollback_quietly(connection) -> None:
    """Roll back, unless the connection is already gone (then the server rolled back)."""
    try:
        connection.rollback()
    except (psycopg2.InterfaceError, psycopg2.OperationalError):
        pass


def load_batch(connection, dataset, staging_file) -> LoadResult:
    batch_id = staging_file.stem
    started = time.monotonic()
    staging = pq.ParquetFile(staging_file)
    columns = staging.schema_arrow.names
    rows = staging.metadata.num_rows
    metadata = staging.schema_arrow.metadata or {}
    content = metadata.get(CONTENT_HASH_KEY, b"").decode() or None
    status = "applied"
    inserted = updated = 0
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [lock_key(dataset.name)])
            cursor.execute(
                sql.SQL("SELECT 1 FROM {} WHERE dataset = %s AND batch_id = %s").format(sql.Identifier(LEDGER_TABLE)),
                [dataset.name, batch_id],
            )
            if cursor.fetchone():
                status = "already applied"
            else:
                table_state = ensure_table(cursor, dataset.table, columns)
                if table_state == "ready" and _unchanged_since(cursor, dataset, content):
                    status = "identical"
                elif rows == 0 and dataset.mode == "replace":
                    log.warning("%s: empty batch %s; replace mode keeps the table as it is", dataset.name, batch_id)
                else:
                    inserted, updated = _apply(cursor, dataset, staging, columns, batch_id)
                    crash_point("load.applied")
                if table_state == "created":
                    ensure_natural_key(cursor, dataset.table)
            if status != "already applied":
                cursor.execute(
                    sql.SQL(
                        "INSERT INTO {} (dataset, batch_id, table_name, mode, rows_staged, rows_inserted, "
                        "rows_updated, content_hash, skipped, table_rows) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    ).format(sql.Identifier(LEDGER_TABLE)),
                    [
                        dataset.name,
                        batch_id,
                        dataset.table,
                        dataset.mode,
                        rows,
                        inserted,
                        updated,
                        content,
                        status == "identical",
                        _count(cursor, dataset.table),
                    ],
                )
        crash_point("load.before_commit")
        connection.commit()
    except BaseException:
        _rollback_quietly(connection)
        raise
    crash_point("load.committed")
    staging_file.unlink()
    result = LoadResult(
        dataset.name,
        batch_id,
        dataset.table,
        rows,
        inserted,
        updated,
        status != "applied",
        time.monotonic() - started,
    )
    if status == "already applied":
        log.info("%s batch %s was already applied; removed its staging file", dataset.name, batch_id)
    elif status == "identical":
        log.info(
            "%s batch %s is identical to the last batch applied to %s; skipped it (0 rows written)",
            dataset.name,
            batch_id,
            dataset.table,
            extra={"dataset": dataset.name, "batch_id": batch_id, "rows": rows, "skipped": True},
        )
    else:
        log.info(
            "loaded %s batch %s into %s (%s): %d staged, %d inserted, %d updated",
            dataset.name,
            batch_id,
            dataset.table,
            dataset.mode,
            rows,
            inserted,
            updated,
            extra={
                "dataset": dataset.name,
                "batch_id": batch_id,
                "rows": rows,
                "inserted": inserted,
                "updated": updated,
            },
        )
    return result


def staging_batches(layout, dataset_name):
    directory = layout.staging(dataset_name)
    if not directory.exists():
        return []
    return sorted(p for p in directory.glob("*.parquet") if not p.name.startswith("."))


def load_dataset(settings, dataset, database) -> list:
    """Apply every staging batch of a dataset, oldest first."""
    layout = Layout(settings.data_dir)
    with phase_lock(layout, dataset.name, "load"):
        batches = staging_batches(layout, dataset.name)
        if not batches:
            log.info("%s: no staging batch to load", dataset.name, extra={"dataset": dataset.name})
            return []
        connection = database.connect()
        try:
            with connection.cursor() as cursor:
                for name, value in SESSION_SETTINGS.items():
                    cursor.execute(sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
            connection.commit()
            ensure_ledger(connection)
            return [load_batch(connection, dataset, path) for path in batches]
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            raise DatabaseUnavailable(
                f"lost the database while loading {dataset.name}: {str(exc).strip().splitlines()[0]}; "
                "the transaction was rolled back and staging kept"
            ) from None
        except psycopg2.Error as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise LoadError(f"loading {dataset.name} into {dataset.table} failed: {message}; staging kept") from None
        finally:
            connection.close()
