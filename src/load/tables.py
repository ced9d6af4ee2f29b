"""Target tables: created with the staging columns, evolved by added columns, their natural key enforced."""

import logging

from psycopg2 import sql

from src.contracts import schema
from src.errors import LoadError

log = logging.getLogger("gho_etl.load")

# Room on each page lets a merge update a row in place (a HOT update: no index write).
FILLFACTOR = 85


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


def _create(cursor, table, columns):
    definitions = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(schema.pg_type(c))) for c in columns]
    definitions += [
        sql.SQL("{} text NOT NULL").format(sql.Identifier(schema.BATCH_COLUMN)),
        sql.SQL("{} timestamptz NOT NULL DEFAULT now()").format(sql.Identifier(schema.LOADED_AT_COLUMN)),
    ]
    cursor.execute(
        sql.SQL("CREATE TABLE {} ({}) WITH (fillfactor = {})").format(
            sql.Identifier(table), sql.SQL(", ").join(definitions), sql.Literal(FILLFACTOR)
        )
    )
    log.info("created table %s", table, extra={"table": table})


def _evolve(cursor, table, columns, existing) -> bool:
    """Add the columns `table` lacks; refuse a column whose type was changed by hand. True if any was added."""
    wanted = {c: schema.pg_type(c) for c in columns}
    wanted[schema.BATCH_COLUMN] = "text"
    wanted[schema.LOADED_AT_COLUMN] = "timestamp with time zone"
    _refuse_too_many_columns(table, set(existing) | set(wanted))
    added = False
    for column, pg_type in wanted.items():
        found = existing.get(column)
        if found is None:
            added = True
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
    return added


def _refuse_too_many_columns(table, columns) -> None:
    extra = sorted(columns - set(schema.CORE_COLUMNS) - {schema.BATCH_COLUMN, schema.LOADED_AT_COLUMN})
    if len(extra) > schema.MAX_EXTRA_COLUMNS:
        raise LoadError(
            f"table {table} would have {len(extra)} columns beyond the GHO core ({', '.join(extra[:5])}, ...); "
            f"at most {schema.MAX_EXTRA_COLUMNS}: drop columns no longer sent, or load into a new table"
        )


def ensure_table(cursor, table: str, columns: list) -> str:
    """Create the target table or evolve it to hold `columns`; return "created", "evolved" or "ready".

    A created table has no unique index yet: the caller fills it and then
    calls `ensure_natural_key` in the same transaction, since building an
    index over loaded rows takes a fraction of the time of maintaining it row
    by row. An existing table gets its index back here if it was dropped,
    before any row is merged.
    """
    existing = _table_columns(cursor, table)
    if not existing:
        _create(cursor, table, columns)
        return "created"
    state = "evolved" if _evolve(cursor, table, columns, existing) else "ready"
    ensure_natural_key(cursor, table)
    return state


def count_rows(cursor, table) -> int:
    cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
    return cursor.fetchone()[0]


def is_empty(cursor, table) -> bool:
    cursor.execute(sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table)))
    return cursor.fetchone()[0]
