"""What a table holds after a batch, recorded in the ledger, and the proof that it still holds it.

A batch is skipped only when the table provably still holds what the last
batch left, so a value edited, a row added or a row deleted by hand makes the
batch apply again, which repairs the table. The ledger records that state in
`table_rows` and `table_fingerprint`, in one of two forms:

- the transactions whose rows the table holds, `xmin:<xid>[,<xid>...]:<columns>`.
  A row version carries the transaction that wrote it as its `xmin`, and no
  row can be written by a transaction after it committed: any row written
  since (an update writes a new row version, even of the same values)
  carries another id. So "as many rows as recorded, every one with a listed
  xmin" proves the table holds exactly the row versions it held then, with
  no value hashed. A table the batch created holds only the batch's own
  transaction (`filled_here`, no scan); after a merge or an append one scan
  of `xmin` lists them (`written_by`, about 0.1 s per million rows). The raw
  xmin survives freezing and VACUUM FULL. `<columns>` is a digest of the
  compared columns as the catalog holds them (name, position, type): a
  dataset that keeps other columns now, or a column renamed, dropped and
  added again or retyped by hand, which writes no row, does not count as
  unchanged either. Only the low 32 bits of an id are stored in a row:
  another transaction could share them only after 2^32 more.
- a fingerprint: a hash of every row's compared columns, summed so that row
  order does not count (`fingerprint`), about 0.4 s per million rows on two
  cores. A replace records it, so that a replace that rewrote the same
  values can be told from one that changed them (`ledger.last_changes`),
  and so does a table more than `MAX_WRITERS` transactions wrote, whose list
  would grow without bound.
"""

import hashlib
import re

from psycopg2 import sql

XMIN_STATE = "xmin:"
_XID = re.compile(r"[0-9]{1,20}")
MAX_WRITERS = 256  # transactions a recorded state lists at most


def fingerprint(cursor, target, columns) -> tuple:
    """(rows, a hash of every row's `columns`) of the table `target`: one scan."""
    cursor.execute(
        sql.SQL("SELECT count(*), coalesce(sum(hash_record_extended(ROW({}), 0)), 0)::text FROM {}").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)), target.sql
        )
    )
    rows, digest = cursor.fetchone()
    return rows, digest


def filled_here(cursor, target, columns) -> str:
    """The state to record for a table this transaction created and filled (no scan)."""
    cursor.execute("SELECT pg_current_xact_id()::text")
    return f"{XMIN_STATE}{cursor.fetchone()[0]}:{_columns_digest(cursor, target, columns)}"


def written_by(cursor, target, columns) -> tuple:
    """(rows, state) to record for a table a batch wrote into: the transactions whose rows it holds (one
    scan of `xmin`), or its fingerprint when more than `MAX_WRITERS` wrote them."""
    cursor.execute(
        sql.SQL("SELECT xmin::text, count(*) FROM {} GROUP BY xmin LIMIT %s").format(target.sql), [MAX_WRITERS + 1]
    )
    writers = sorted(cursor.fetchall(), key=lambda writer: int(writer[0]))
    if len(writers) > MAX_WRITERS:
        return fingerprint(cursor, target, columns)
    listed = ",".join(xid for xid, _ in writers)
    return sum(count for _, count in writers), f"{XMIN_STATE}{listed}:{_columns_digest(cursor, target, columns)}"


def is_filled_here(state) -> bool:
    """Whether `state` lists transactions (`filled_here`, `written_by`) rather than being a fingerprint."""
    return bool(state) and state.startswith(XMIN_STATE)


def still_holds(cursor, target, columns, rows, state) -> bool:
    """Whether `target` holds exactly what was recorded as (`rows`, `state`) over `columns`."""
    if rows is None or state is None:
        return False
    if not is_filled_here(state):
        return fingerprint(cursor, target, columns) == (rows, state)
    listed, _, digest = state[len(XMIN_STATE) :].partition(":")
    writers = listed.split(",") if listed else []
    if not all(_XID.fullmatch(xid) for xid in writers) or digest != _columns_digest(cursor, target, columns):
        return False
    cursor.execute(
        sql.SQL("SELECT count(*), count(*) FILTER (WHERE NOT xmin = ANY(%s::text[]::xid[])) FROM {}").format(
            target.sql
        ),
        [[str(int(xid) % 2**32) for xid in writers]],
    )
    return cursor.fetchone() == (rows, 0)


def _columns_digest(cursor, target, columns) -> str:
    """A digest of `columns` as the table has them: name, position and type of each (missing: absent)."""
    cursor.execute(
        "SELECT attname, attnum, atttypid::regtype::text FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped AND attname = ANY(%s)",
        [target.sql.as_string(cursor), list(columns)],
    )
    found = {name: f"{position}:{type_name}" for name, position, type_name in cursor.fetchall()}
    layout = ";".join(f"{name}={found.get(name, '-')}" for name in columns)
    return hashlib.sha256(layout.encode()).hexdigest()[:16]
