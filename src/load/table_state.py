"""What a table holds after a batch, recorded in the ledger, and the proof that it still holds it.

A batch is skipped only when the table provably still holds what the last
batch left, so a value edited, a row added or a row deleted by hand makes the
batch apply again, which repairs the table. The ledger records that state in
`table_rows` and `table_fingerprint`, in one of two forms:

- a fingerprint: a hash of every row's compared columns, summed so that row
  order does not count (`fingerprint`). It costs a scan that hashes every
  value, about 0.4 s per million rows on two cores.
- for a table the batch created: the transaction that filled it,
  `xmin:<xid>:<columns>`. Every row the load wrote carries that transaction
  id as its `xmin`, and any row written since carries another (an update
  writes a new row version), so "as many rows as recorded, all with that
  xmin" proves the table unchanged without hashing anything, and the first
  load needs no scan at all. The raw xmin survives freezing and VACUUM
  FULL. `<columns>` is a digest of the compared columns as the catalog
  holds them (name, position, type): a dataset that keeps other columns
  now, or a column renamed, dropped and added again or retyped by hand,
  which writes no row, does not count as unchanged either. Only the low 32
  bits of an id are stored in a row: another transaction could share them
  only after 2^32 more.
"""

import hashlib

from psycopg2 import sql

XMIN_STATE = "xmin:"


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


def is_filled_here(state) -> bool:
    """Whether `state` is of the form `filled_here` records."""
    return bool(state) and state.startswith(XMIN_STATE)


def still_holds(cursor, target, columns, rows, state) -> bool:
    """Whether `target` holds exactly what was recorded as (`rows`, `state`) over `columns`."""
    if rows is None or state is None:
        return False
    if not is_filled_here(state):
        return fingerprint(cursor, target, columns) == (rows, state)
    xid, _, digest = state[len(XMIN_STATE) :].partition(":")
    if not xid.isdigit() or digest != _columns_digest(cursor, target, columns):
        return False
    cursor.execute(
        sql.SQL("SELECT count(*), count(*) FILTER (WHERE xmin::text::bigint <> %s) FROM {}").format(target.sql),
        [int(xid) % 2**32],
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
