"""What the target database holds, asked of its catalog: whether a relation exists, and its columns.

Every name is schema-qualified with the schema given, else the connection's (`src.db`), never found
through the search path.
"""

from psycopg2 import sql


def _schema_of(cursor, schema):
    return schema if schema is not None else getattr(cursor.connection, "schema", None)


def relation_exists(cursor, name, schema=None) -> bool:
    """Whether a table or view `name` exists in `schema` (default: the connection's)."""
    where = _schema_of(cursor, schema)
    qualified = sql.Identifier(where, name) if where else sql.Identifier(name)
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [qualified.as_string(cursor)])
    return cursor.fetchone()[0]


def column_names(cursor, name, schema=None) -> list:
    """The columns of table or view `name`, in their order ([] when it does not exist)."""
    where = _schema_of(cursor, schema)
    qualified = sql.Identifier(where, name) if where else sql.Identifier(name)
    # pg_attribute, not information_schema.columns: the same columns of our relations, in a tenth of the time.
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum",
        [qualified.as_string(cursor)],
    )
    return [column for (column,) in cursor.fetchall()]
