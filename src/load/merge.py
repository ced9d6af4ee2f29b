"""Applying a staging batch to its target by the dataset's mode: replace, append, or merge on the natural key."""

from psycopg2 import sql

from src.contracts import schema
from src.load.copy_stream import STAGE, copy_into_stage, copy_staging
from src.load.tables import is_empty, target_of


def _same_key(left, right, columns) -> sql.Composed:
    """Natural-key equality that treats NULLs as equal (like the NULLS NOT DISTINCT index) and
    that PostgreSQL can hash: each part compares the value with NULL mapped to a filler, and
    whether it is NULL, so a real value equal to the filler never matches a NULL."""
    parts = []
    for staged, column in zip(schema.NATURAL_KEY, columns.key):
        filler = sql.Literal(-(2**31) if schema.pg_type(staged) == "integer" else "")
        parts.append(
            sql.SQL("coalesce({l}.{c}, {f}) = coalesce({r}.{c}, {f}) AND ({l}.{c} IS NULL) = ({r}.{c} IS NULL)").format(
                l=sql.Identifier(left), r=sql.Identifier(right), c=sql.Identifier(column), f=filler
            )
        )
    return sql.SQL(" AND ").join(parts)


def apply_batch(cursor, dataset, staging, columns, batch_id, created=False) -> tuple:
    """Apply a staging batch to the target by the dataset's mode; return (inserted, updated).

    `columns` (`TableColumns`) says which staging columns go to which of the table's columns.
    `created`: the caller created the table in this transaction, so its rows are copied frozen
    (`copy_staging`'s `freeze`).
    """
    target = target_of(cursor, dataset)
    table = target.sql
    if created:
        return copy_staging(cursor, staging, table, columns, batch_id, freeze=True), 0
    if dataset.mode == "replace":
        cursor.execute(sql.SQL("DELETE FROM {}").format(table))
        return copy_staging(cursor, staging, table, columns, batch_id), 0
    if is_empty(cursor, target):
        # Nothing to merge with and staging holds each key once: a plain COPY.
        return copy_staging(cursor, staging, table, columns, batch_id), 0
    copy_into_stage(cursor, staging, columns)
    names = list(columns.names)
    target_columns = names + [schema.BATCH_COLUMN, schema.LOADED_AT_COLUMN]
    insert = sql.SQL("INSERT INTO {} AS t ({}) SELECT {}, %s, now() FROM {} AS s").format(
        table,
        sql.SQL(", ").join(map(sql.Identifier, target_columns)),
        sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in names),
        STAGE,
    )
    key = sql.SQL(", ").join(map(sql.Identifier, columns.key))
    # merge: rewrite only rows whose data changed. GHO's Id is not stable, so a new Id alone is not a
    # change; a table of the natural key alone has nothing that could change, and merges as append does.
    compared = [c for c in columns.data if c in columns.compared]
    if dataset.mode == "append" or not compared:
        same = _same_key("o", "s", columns)
        insert += sql.SQL(" WHERE NOT EXISTS (SELECT 1 FROM {} AS o WHERE {})").format(table, same)
        conflict = sql.SQL(" ON CONFLICT ({}) DO NOTHING").format(key)
    else:
        where, conflict = _merge_clauses(table, key, columns, compared)
        insert += where
    # xmax is 0 on a freshly inserted row version and set on an updated one.
    counted = sql.SQL(
        "WITH written AS ({} RETURNING (t.xmax = 0) AS inserted) "
        "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written"
    ).format(insert + conflict)
    cursor.execute(counted, [batch_id])
    inserted, updated = cursor.fetchone()
    return inserted, updated


def _merge_clauses(table, key, columns, compared) -> tuple:
    """(WHERE of the insert, ON CONFLICT) of a merge: only new rows and rows whose `compared` columns changed."""
    assignments = [
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
        for c in columns.data + [schema.BATCH_COLUMN, schema.LOADED_AT_COLUMN]
    ]
    changed = sql.SQL("(t.{}) IS DISTINCT FROM (EXCLUDED.{})").format(
        sql.SQL(", t.").join(map(sql.Identifier, compared)),
        sql.SQL(", EXCLUDED.").join(map(sql.Identifier, compared)),
    )
    conflict = sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {} WHERE {}").format(
        key, sql.SQL(", ").join(assignments), changed
    )
    # Rows already in the table exactly as staged are dropped before the upsert by one hash
    # anti-join, so only new and changed rows pay for an index probe. ON CONFLICT still decides
    # for every row that is left.
    unchanged = sql.SQL("(o.{}) IS NOT DISTINCT FROM (s.{})").format(
        sql.SQL(", o.").join(map(sql.Identifier, compared)),
        sql.SQL(", s.").join(map(sql.Identifier, compared)),
    )
    where = sql.SQL(" WHERE NOT EXISTS (SELECT 1 FROM {} AS o WHERE {} AND {})").format(
        table, _same_key("o", "s", columns), unchanged
    )
    return where, conflict
