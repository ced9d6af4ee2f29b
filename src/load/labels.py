"""The labelled view of a dataset's table: `<table>_labeled`, names beside the codes, in plain SQL.

Every column of the table, in the table's order, and after each code the names the reference tables
(`src.contracts.reference`) hold for it: the indicator's name, the location's name and type, its
parent region's name, each dimension's title and the title of its value. LEFT JOINs on primary keys,
so the view has exactly the table's rows, with NULL names until the reference is refreshed. Made
after each load, unless its comment shows it already is what the table's columns make; when the
table's columns changed in a way CREATE OR REPLACE cannot follow, the view is made anew, unless views
of the user's depend on it (then the old one stays, with a warning).
"""

import hashlib
import logging

import psycopg2
from psycopg2 import sql

from src.contracts import reference
from src.contracts.catalog import column_names
from src.reference import store

log = logging.getLogger("gho_etl.load")

# Staging column -> [(alias of the join, column of the joined table, name of the label)] placed after it;
# {column} is the table's name for the staging column (a dataset may rename dim1 to sex: sex_title).
_LABELS = {
    "indicator_code": [("ind", "indicator_name", "indicator_name")],
    "spatial_dim_type": [("loc_type", "title", "location_type")],
    "spatial_dim": [("loc", "title", "location_name")],
    "parent_location": [("loc", "parent_title", "parent_region_name")],
    "dim1_type": [("d1_type", "title", "{column}_title")],
    "dim1": [("d1", "title", "{column}_title")],
    "dim2_type": [("d2_type", "title", "{column}_title")],
    "dim2": [("d2", "title", "{column}_title")],
    "dim3_type": [("d3_type", "title", "{column}_title")],
    "dim3": [("d3", "title", "{column}_title")],
    "data_source_dim_type": [("ds_type", "title", "data_source_dim_type_title")],
    "data_source_dim": [("ds", "title", "data_source_title")],
}
# alias -> (reference table role, [(its column, the staging column it equals)]).
_JOINS = {
    "ind": ("indicators", [("indicator_code", "indicator_code")]),
    "loc_type": ("dimensions", [("code", "spatial_dim_type")]),
    "loc": ("values", [("dimension", "spatial_dim_type"), ("code", "spatial_dim")]),
    "d1_type": ("dimensions", [("code", "dim1_type")]),
    "d1": ("values", [("dimension", "dim1_type"), ("code", "dim1")]),
    "d2_type": ("dimensions", [("code", "dim2_type")]),
    "d2": ("values", [("dimension", "dim2_type"), ("code", "dim2")]),
    "d3_type": ("dimensions", [("code", "dim3_type")]),
    "d3": ("values", [("dimension", "dim3_type"), ("code", "dim3")]),
    "ds_type": ("dimensions", [("code", "data_source_dim_type")]),
    "ds": ("values", [("dimension", "data_source_dim_type"), ("code", "data_source_dim")]),
}


def view_statement(schema, dataset, table_columns) -> sql.Composed:
    """The SELECT of the labelled view over a table with these columns (in order)."""
    roles = {dataset.column_for(core): core for core in set(_LABELS) | {c for j in _JOINS.values() for _, c in j[1]}}
    roles.pop(None, None)
    available = {roles[c] for c in table_columns if c in roles}
    joins = [alias for alias, (_, on) in _JOINS.items() if all(core in available for _, core in on)]
    taken = set(table_columns)
    items = []
    for column in table_columns:
        items.append(sql.SQL("f.{}").format(sql.Identifier(column)))
        for alias, source, label in _LABELS.get(roles.get(column), []):
            if alias in joins:
                name = label.format(column=column)[:63]
                name = name if name not in taken else name[:57] + "_label"
                taken.add(name)
                items.append(
                    sql.SQL("{}.{} AS {}").format(sql.Identifier(alias), sql.Identifier(source), sql.Identifier(name))
                )
    tables = reference.names(schema)
    join_sql = []
    for alias in joins:
        role, on = _JOINS[alias]
        condition = sql.SQL(" AND ").join(
            sql.SQL("{}.{} = f.{}").format(
                sql.Identifier(alias), sql.Identifier(ref), sql.Identifier(dataset.column_for(core))
            )
            for ref, core in on
        )
        join_sql.append(sql.SQL("LEFT JOIN {} {} ON {}").format(tables[role], sql.Identifier(alias), condition))
    return sql.SQL("SELECT {} FROM {} f {}").format(
        sql.SQL(", ").join(items), reference.qualified(schema, dataset.table), sql.SQL(" ").join(join_sql)
    )


def ensure_labeled_view(connection, dataset) -> None:
    """Make or update `<table>_labeled` (and the reference tables it reads), in its own transaction; nothing
    when it already is what this table's columns make (`_is_current`), so a load takes no lock on it."""
    schema = connection.schema
    view = reference.qualified(schema, reference.labeled_view_name(dataset.table))
    with connection.cursor() as cursor:
        columns = column_names(cursor, dataset.table)
        current = bool(columns) and _is_current(cursor, view, view_statement(schema, dataset, columns))
    connection.rollback()
    if not columns or current:
        return
    store.ensure(connection)
    with connection, connection.cursor() as cursor:
        columns = column_names(cursor, dataset.table)
        if not columns:
            return
        select = view_statement(schema, dataset, columns)
        cursor.execute("SAVEPOINT labeled_view")
        try:
            cursor.execute(sql.SQL("CREATE OR REPLACE VIEW {} AS {}").format(view, select))
            _mark(cursor, view, select)
            return
        except psycopg2.Error:  # the columns changed in a way a replace cannot follow
            cursor.execute("ROLLBACK TO SAVEPOINT labeled_view")
        try:
            cursor.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(view))
            cursor.execute(sql.SQL("CREATE VIEW {} AS {}").format(view, select))
            _mark(cursor, view, select)
        except psycopg2.Error as exc:
            cursor.execute("ROLLBACK TO SAVEPOINT labeled_view")
            log.warning(
                "%s: the labelled view %s was left as it was: %s",
                dataset.name,
                reference.labeled_view_name(dataset.table),
                str(exc).strip().splitlines()[0],
                extra={"dataset": dataset.name},
            )


# The view's comment: the digest of the statement it was made from and of its definition as the server
# holds it, so a view replaced by hand (even keeping the comment) or made from other columns is made again.
_MARK = "gho-etl labelled view; statement {}, definition {}"
_DEFINITION = "SELECT pg_get_viewdef(oid), obj_description(oid, 'pg_class') FROM pg_class WHERE oid = to_regclass(%s)"


def _digest(text) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _definition(cursor, view):
    """(the server's definition, the comment) of the view, or None when there is none."""
    cursor.execute(_DEFINITION, [view.as_string(cursor)])
    return cursor.fetchone()


def _is_current(cursor, view, select) -> bool:
    found = _definition(cursor, view)
    if found is None or found[0] is None:
        return False
    return found[1] == _MARK.format(_digest(select.as_string(cursor)), _digest(found[0]))


def _mark(cursor, view, select) -> None:
    definition, _ = _definition(cursor, view)
    mark = _MARK.format(_digest(select.as_string(cursor)), _digest(definition))
    cursor.execute(sql.SQL("COMMENT ON VIEW {} IS {}").format(view, sql.Literal(mark)))
