"""Which staging columns a dataset's table holds, and under which names (the dataset's `columns` and `rename`).

Staging always holds every column (`src.contracts.staging`); the load reads the ones the dataset
keeps and writes each under the table's name for it, in the COPY, the merge, the unique index and
the fingerprint alike. PostgreSQL types come from the staging column, whatever its new name.

A renamed column carries a comment naming the staging column it holds (`MARK`), so a table can
tell which of its columns holds what after the dataset's renames change. A column whose name is
a staging column's and that carries no mark holds that column.
"""

import re
from dataclasses import dataclass

from psycopg2 import sql

from src.contracts import schema
from src.errors import LoadError

MARK = "gho-etl: holds the GHO column {}"
_MARK_PATTERN = re.compile(r"^gho-etl: holds the GHO column ([a-z0-9_]+)$")


@dataclass(frozen=True)
class TableColumns:
    """The staging columns read (`staged`) and the table's name of each (`names`), in staging order."""

    staged: tuple
    names: tuple

    @classmethod
    def of(cls, dataset, staged_columns) -> "TableColumns":
        pairs = [(column, dataset.column_for(column)) for column in staged_columns]
        pairs = [(column, name) for column, name in pairs if name is not None]
        owners = {}
        for column, name in pairs:
            if name in owners:
                raise LoadError(
                    f"dataset {dataset.name!r}: the API's field {column} would be column {name}, the name the "
                    f"dataset gives {owners[name]}; rename {owners[name]} otherwise, or list the columns to keep"
                )
            owners[name] = column
        return cls(tuple(c for c, _ in pairs), tuple(n for _, n in pairs))

    def name_of(self, staged_column) -> str:
        return self.names[self.staged.index(staged_column)]

    @property
    def key(self) -> list:
        """The table's names of the natural key, in its order."""
        return [self.name_of(column) for column in schema.NATURAL_KEY]

    @property
    def index_key(self) -> list:
        """The table's names of the natural key, in the order its unique index sorts them."""
        return [self.name_of(column) for column in schema.NATURAL_KEY_INDEX_ORDER]

    @property
    def data(self) -> list:
        """Every column but the natural key's."""
        return [n for c, n in zip(self.staged, self.names) if c not in schema.NATURAL_KEY]

    @property
    def compared(self) -> list:
        """What a change is: every column but GHO's Id, which is not stable between downloads."""
        return [n for c, n in zip(self.staged, self.names) if c != "id"]

    def pg_types(self) -> dict:
        """Table name -> PostgreSQL type, in table order."""
        return {n: schema.pg_type(c) for c, n in zip(self.staged, self.names)}

    def renamed(self) -> list:
        return [(c, n) for c, n in zip(self.staged, self.names) if c != n]


def read_marks(cursor, target) -> dict:
    """Column -> the staging column its mark names, for the columns of `target` that carry one."""
    cursor.execute(
        """SELECT a.attname, col_description(a.attrelid, a.attnum)
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped""",
        [target.schema, target.name],
    )
    marks = {}
    for column, comment in cursor.fetchall():
        found = _MARK_PATTERN.match(comment or "")
        if found:
            marks[column] = found.group(1)
    return marks


def refuse_renames(dataset, target, columns: TableColumns, existing, marks) -> None:
    """LoadError when a column the table has would be renamed: its data would stay behind in the old column."""
    for staged, name in zip(columns.staged, columns.names):
        holder = next((column for column, marked in marks.items() if marked == staged), None)
        if holder is None and staged in existing and staged not in marks:
            holder = staged
        if holder is not None and holder != name:
            raise LoadError(
                f"table {target}: column {holder} holds {staged}, which dataset {dataset.name!r} now names {name}; "
                f"rename the column first (ALTER TABLE {target} RENAME COLUMN {holder} TO {name}) or set rename back"
            )


def mark_renamed(cursor, target, columns: TableColumns, marks) -> None:
    """Give every renamed column its mark (a column renamed by hand to the dataset's name gets it here)."""
    for staged, name in columns.renamed():
        if marks.get(name) != staged:
            cursor.execute(
                sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                    target.sql, sql.Identifier(name), sql.Literal(MARK.format(staged))
                )
            )
