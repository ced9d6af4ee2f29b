"""What a table holds after a batch, recorded in the ledger, and the proof that it still holds it.

A batch is skipped only when the table provably still holds what the last
batch left, so a value edited, a row added or a row deleted by hand makes the
batch apply again, which repairs the table. The ledger records that state in
`table_rows` and `table_fingerprint`, in one of two forms:

- the transactions whose rows the table holds, `xmin:<xid>[,<xid>...]:<columns>:<cluster>`.
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
  unchanged either. A row stores only the low 32 bits of its id, which a
  transaction 2^32 later shares, so the state lists full ids (64 bits) and
  `<cluster>`, the server's system identifier: it proves nothing once the
  server has started 2^32 transactions after a listed one, nor on another
  cluster (a dump restored elsewhere counts its ids afresh; told apart only
  where the role may call pg_control_system()), nor when it lists an id the
  server has not reached. A state of an earlier version, without them,
  proves nothing either: its batch applies once more.
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
_CLUSTER = re.compile(r"-?[0-9]{1,20}|-")  # an int8: negative for clusters made after 2038
XID_SPAN = 2**32  # a row stores an id's low 32 bits: the next transaction to share them starts 2^32 later
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
    return _state([_own_xid(cursor)], _columns_digest(cursor, target, columns), _cluster(cursor))


def written_by(cursor, target, columns) -> tuple:
    """(rows, state) to record for a table a batch wrote into: the transactions whose rows it holds (one
    scan of `xmin`), or its fingerprint when more than `MAX_WRITERS` wrote them."""
    cursor.execute(
        sql.SQL(
            "SELECT xmin::text, count(*), pg_snapshot_xmax(pg_current_snapshot())::text FROM {} GROUP BY xmin LIMIT %s"
        ).format(target.sql),
        [MAX_WRITERS + 1],
    )
    writers = cursor.fetchall()
    if len(writers) > MAX_WRITERS:
        return fingerprint(cursor, target, columns)
    # The newest writer the scan can have seen: this transaction, or one that committed after it began.
    newest = max([_own_xid(cursor)] + [int(scanned_before) - 1 for _, _, scanned_before in writers])
    listed = sorted(full_xid(int(xid), newest) for xid, _, _ in writers)
    state = _state(listed, _columns_digest(cursor, target, columns), _cluster(cursor))
    return sum(count for _, count, _ in writers), state


def is_filled_here(state) -> bool:
    """Whether `state` lists transactions (`filled_here`, `written_by`) rather than being a fingerprint."""
    return bool(state) and state.startswith(XMIN_STATE)


def parse_state(state):
    """(full ids, columns digest, cluster) of a state that lists transactions; None if it does not parse,
    as a state an earlier version recorded (low 32 bits, no cluster) does not."""
    parts = state[len(XMIN_STATE) :].split(":") if is_filled_here(state) else []
    if len(parts) != 3:
        return None
    listed, digest, cluster = parts
    writers = listed.split(",") if listed else []
    if not all(_XID.fullmatch(xid) for xid in writers) or not _CLUSTER.fullmatch(cluster):
        return None
    return [int(xid) for xid in writers], digest, cluster


def still_holds(cursor, target, columns, rows, state) -> bool:
    """Whether `target` holds exactly what was recorded as (`rows`, `state`) over `columns`."""
    if rows is None or state is None:
        return False
    if not is_filled_here(state):
        return fingerprint(cursor, target, columns) == (rows, state)
    parsed = parse_state(state)
    if parsed is None:
        return False
    writers, digest, cluster = parsed
    if cluster != _cluster(cursor) or digest != _columns_digest(cursor, target, columns):
        return False
    # One statement, one snapshot: the rows counted are those of transactions below the horizon read with them.
    cursor.execute(
        sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE NOT xmin = ANY(%s::text[]::xid[])), "
            "pg_snapshot_xmax(pg_current_snapshot())::text FROM {}"
        ).format(target.sql),
        [[str(xid % XID_SPAN) for xid in writers]],
    )
    counted, foreign, horizon = cursor.fetchone()
    return (counted, foreign) == (rows, 0) and ids_still_unique(writers, int(horizon))


def full_xid(low_bits, newest) -> int:
    """The full id of a transaction whose row a table holds, from the 32 bits the row stores: the latest id up
    to `newest` (the newest writer the scan can have seen) with those bits."""
    return newest - (newest - low_bits) % XID_SPAN


def ids_still_unique(writers, horizon) -> bool:
    """Whether no transaction but the listed ones can have written a row carrying their 32 bits that a
    snapshot with this `horizon` (its xmax: every transaction it sees is below it) sees: every listed id is
    below it, and none 2^32 or more behind it."""
    return all(xid < horizon and horizon - xid <= XID_SPAN for xid in writers)


def _state(writers, digest, cluster) -> str:
    return f"{XMIN_STATE}{','.join(map(str, writers))}:{digest}:{cluster}"


def _own_xid(cursor) -> int:
    """This transaction's full (64-bit) id."""
    cursor.execute("SELECT pg_current_xact_id()::text")
    return int(cursor.fetchone()[0])


def _cluster(cursor) -> str:
    """The server's system identifier (read once per connection: it reads pg_control from disk), or "-" for a
    role not allowed to read it, asked first since a refused call would abort the load's transaction; then
    states of two clusters cannot be told apart."""
    connection = cursor.connection
    known = getattr(connection, "cluster", None)
    if known is not None:
        return known
    cursor.execute("SELECT has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')")
    known = "-"
    if cursor.fetchone()[0]:
        cursor.execute("SELECT system_identifier::text FROM pg_catalog.pg_control_system()")
        known = cursor.fetchone()[0]
    try:
        connection.cluster = known
    except AttributeError:  # a plain psycopg2 connection takes no attribute: asked again next time
        pass
    return known


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
