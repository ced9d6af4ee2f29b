"""Target tables: created with the dataset's columns (`columns.TableColumns`), evolved by added columns, their
natural key enforced.

Every table is named with its schema (`Target`): a name never resolves
through the search path, where pg_catalog comes first, so a table called
`pg_class` could never mean the catalog (settings refuse such names anyway).
"""

import hashlib
import logging
from dataclasses import dataclass

from psycopg2 import sql

from src.contracts import schema
from src.errors import LoadError
from src.load.columns import TableColumns, mark_renamed, read_marks, refuse_renames

log = logging.getLogger("gho_etl.load")

# Room on each page lets a merge update a row in place (a HOT update: no index write).
FILLFACTOR = 85


@dataclass(frozen=True)
class Target:
    """A dataset's table, always with its schema."""

    schema: str
    name: str

    @property
    def sql(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


def target_of(cursor, dataset) -> Target:
    """The dataset's table in the schema the connection loads into (`src.db`)."""
    return Target(cursor.connection.schema, dataset.table)


def _table_columns(cursor, target) -> dict:
    """Column -> its type as information_schema.columns' data_type names it (a domain by its base type), read
    from pg_attribute, which answers in a fraction of the time."""
    cursor.execute(
        """SELECT a.attname, format_type(CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END, NULL)
           FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
           WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped""",
        [target.sql.as_string(cursor)],
    )
    return dict(cursor.fetchall())


def index_name(table) -> str:
    """Unique per table name: two 63-character names sharing a prefix get different indexes."""
    return f"{table[:44]}_nk_{hashlib.sha256(table.encode()).hexdigest()[:10]}"


def _legacy_index_name(table) -> str:
    return f"{table[:50]}_natural_key"


def ensure_natural_key(cursor, target: Target, key) -> None:
    """The unique index on the natural key, `key` its columns' names in the table (an index of an earlier
    version is renamed, not built again)."""
    cursor.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = to_regclass(%s) AND c.relname IN (%s, %s)",
        [target.sql.as_string(cursor), _legacy_index_name(target.name), index_name(target.name)],
    )
    found = {row[0] for row in cursor.fetchall()}
    if index_name(target.name) in found:
        return  # as CREATE INDEX IF NOT EXISTS would find, without the lock it takes on the table
    # An older gho-etl still running keeps making its own name: then both stay, and either serves.
    if found == {_legacy_index_name(target.name)}:
        cursor.execute(
            sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                sql.Identifier(target.schema, _legacy_index_name(target.name)),
                sql.Identifier(index_name(target.name)),
            )
        )
    cursor.execute(
        sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({}) NULLS NOT DISTINCT").format(
            sql.Identifier(index_name(target.name)),
            target.sql,
            sql.SQL(", ").join(map(sql.Identifier, key)),
        )
    )


def _create(cursor, target, columns: TableColumns):
    definitions = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns.pg_types().items()]
    definitions += [
        sql.SQL("{} text NOT NULL").format(sql.Identifier(schema.BATCH_COLUMN)),
        sql.SQL("{} timestamptz NOT NULL DEFAULT now()").format(sql.Identifier(schema.LOADED_AT_COLUMN)),
    ]
    cursor.execute(
        sql.SQL("CREATE TABLE {} ({}) WITH (fillfactor = {})").format(
            target.sql, sql.SQL(", ").join(definitions), sql.Literal(FILLFACTOR)
        )
    )
    log.info("created table %s", target, extra={"table": str(target)})


def _evolve(cursor, target, columns: TableColumns, existing) -> bool:
    """Add the columns `table` lacks; refuse a column whose type was changed by hand. True if any was added."""
    wanted = columns.pg_types()
    wanted[schema.BATCH_COLUMN] = "text"
    wanted[schema.LOADED_AT_COLUMN] = "timestamp with time zone"
    if set(wanted) - set(existing):
        _refuse_too_many_columns(target, set(existing) | set(wanted), columns)
    added = False
    for column, pg_type in wanted.items():
        found = existing.get(column)
        if found is None:
            added = True
            cursor.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(target.sql, sql.Identifier(column), sql.SQL(pg_type))
            )
            log.warning(
                "schema evolution: added column %s %s to table %s",
                column,
                pg_type,
                target,
                extra={"table": str(target), "column": column},
            )
        elif found != pg_type:
            raise LoadError(
                f"table {target}: column {column} is {found}, expected {pg_type} "
                "(changed by hand?); restore its type, or rename the table to reload from scratch"
            )
    return added


def _refuse_too_many_columns(table, names, columns: TableColumns) -> None:
    core = set(schema.CORE_COLUMNS) | {columns.name_of(c) for c in columns.staged if c in schema.CORE_COLUMNS}
    extra = sorted(names - core - {schema.BATCH_COLUMN, schema.LOADED_AT_COLUMN})
    if len(extra) > schema.MAX_EXTRA_COLUMNS:
        raise LoadError(
            f"table {table} would have {len(extra)} columns beyond the GHO core ({', '.join(extra[:5])}, ...); "
            f"at most {schema.MAX_EXTRA_COLUMNS}: drop columns no longer sent, or load into a new table"
        )


def ensure_table(cursor, target: Target, dataset, columns: TableColumns) -> str:
    """Create the target table or evolve it to hold `columns`; return "created", "evolved" or "ready".

    A created table has no unique index yet: the caller fills it and then
    calls `ensure_natural_key` in the same transaction, since building an
    index over loaded rows takes a fraction of the time of maintaining it row
    by row. An existing table gets its index back here if it was dropped,
    before any row is merged. A column the dataset no longer keeps stays as it
    is; one it renames is refused (`columns.refuse_renames`) before anything changes.
    """
    existing = _table_columns(cursor, target)
    if not existing:
        _create(cursor, target, columns)
        mark_renamed(cursor, target, columns, {})
        return "created"
    marks = read_marks(cursor, target)
    refuse_renames(dataset, target, columns, existing, marks)
    state = "evolved" if _evolve(cursor, target, columns, existing) else "ready"
    mark_renamed(cursor, target, columns, marks)
    ensure_natural_key(cursor, target, columns.index_key)
    return state


def is_empty(cursor, target: Target) -> bool:
    cursor.execute(sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(target.sql))
    return cursor.fetchone()[0]
