"""The reference tables' reads and writes for a refresh (their names and DDL: `src.contracts.reference`)."""

from psycopg2 import sql
from psycopg2.extras import execute_values

from src.contracts import ledger, reference
from src.contracts.catalog import column_names, relation_exists

# The staging columns that name a dimension; their values are dimension codes.
TYPE_COLUMNS = ("spatial_dim_type", "dim1_type", "dim2_type", "dim3_type", "data_source_dim_type")


def dimensions_in_use(connection, datasets) -> dict:
    """Dataset name -> the dimension codes its table holds, for the datasets that have a table."""
    used = {}
    with connection, connection.cursor() as cursor:
        for dataset in datasets:
            columns = [dataset.column_for(column) for column in TYPE_COLUMNS]
            columns = [column for column in columns if column]
            if not relation_exists(cursor, dataset.table):
                continue
            used[dataset.name] = set()
            if not columns:
                continue
            present = set(column_names(cursor, dataset.table))
            types = sql.SQL(", ").join(sql.Identifier(c) for c in columns if c in present)
            if types.seq:
                cursor.execute(
                    sql.SQL("SELECT DISTINCT unnest(ARRAY[{}]) FROM {}").format(
                        types, reference.qualified(connection.schema, dataset.table)
                    )
                )
                used[dataset.name] = {code for (code,) in cursor.fetchall() if code}
    return used


def ensure(connection) -> None:
    """The reference tables, made when missing, in their own transaction (no DDL lock when all are there)."""
    with connection, connection.cursor() as cursor:
        tables = [table.as_string(cursor) for table in reference.names(connection.schema).values()]
        cursor.execute("SELECT bool_and(to_regclass(name) IS NOT NULL) FROM unnest(%s::text[]) AS name", [tables])
        if cursor.fetchone()[0]:
            return
        ledger.take_lock(cursor, "ddl")
        reference.ensure_tables(cursor, connection.schema)


def due(connection, dataset_names, hours):
    """ "full" when the reference is missing or older than `hours`, else the names of `dataset_names` whose
    dimensions it has not seen yet (empty: nothing due)."""
    with connection, connection.cursor() as cursor:
        if not reference.tables_exist(cursor, connection.schema):
            return "full"
        state = reference.refreshed(cursor, connection.schema)
        if reference.CATALOGUE not in state:
            return "full"
        cursor.execute(
            sql.SQL(
                "SELECT min(refreshed_at) < now() - make_interval(secs => %s) FROM {} WHERE resource NOT LIKE %s"
            ).format(reference.names(connection.schema)["state"]),
            [float(hours) * 3600, reference.DATASET_PREFIX + "%"],
        )
        if cursor.fetchone()[0]:
            return "full"
    return [name for name in dataset_names if reference.DATASET_PREFIX + name not in state]


def summary(connection):
    """What the reference holds ({refreshed_at, indicators, dimensions with values}), or None before a refresh."""
    with connection, connection.cursor() as cursor:
        if not reference.tables_exist(cursor, connection.schema):
            return None
        state = reference.refreshed(cursor, connection.schema)
    if reference.CATALOGUE not in state:
        return None
    resources = {k: v for k, v in state.items() if not k.startswith(reference.DATASET_PREFIX)}
    return {
        "refreshed_at": min(at for _, _, at in resources.values()),
        "indicators": state[reference.CATALOGUE][0],
        "dimensions": sorted(
            k.split("/")[1] for k, (rows, _, _) in resources.items() if k.startswith("DIMENSION/") and rows
        ),
    }


def value_counts(connection) -> dict:
    """Dimension code -> values stored by the last refreshes ({} before the first)."""
    with connection, connection.cursor() as cursor:
        if not reference.tables_exist(cursor, connection.schema):
            return {}
        state = reference.refreshed(cursor, connection.schema)
    return {k.split("/")[1]: rows for k, (rows, _, _) in state.items() if k.startswith("DIMENSION/")}


def stored_dimensions(connection) -> tuple:
    """(codes of the dimension list, codes whose values were fetched), as the last refreshes left them."""
    with connection, connection.cursor() as cursor:
        cursor.execute(sql.SQL("SELECT code FROM {}").format(reference.names(connection.schema)["dimensions"]))
        known = {code for (code,) in cursor.fetchall()}
        state = reference.refreshed(cursor, connection.schema)
    fetched = {resource.split("/")[1] for resource in state if resource.startswith("DIMENSION/")}
    return known, fetched


def replace(connection, catalogue, dimensions, values, used) -> None:
    """Replace the catalogue, the dimension list and each fetched dimension's values, all or nothing."""
    ensure(connection)
    tables = reference.names(connection.schema)
    with connection, connection.cursor() as cursor:
        ledger.take_lock(cursor, "reference")
        indicators = _unique(catalogue, lambda r: r["IndicatorCode"], prefer=lambda r: r["Language"] == "EN")
        cursor.execute(sql.SQL("DELETE FROM {}").format(tables["indicators"]))
        _insert(cursor, tables["indicators"], ("indicator_code", "indicator_name", "language"), indicators)
        cursor.execute(sql.SQL("DELETE FROM {}").format(tables["dimensions"]))
        _insert(cursor, tables["dimensions"], ("code", "title"), _unique(dimensions, lambda r: r["Code"], _titled))
        listed = _unique(dimensions, lambda r: r["Code"])
        state = [(reference.CATALOGUE, len(indicators), None), (reference.DIMENSION_LIST, len(listed), None)]
        # What no configured dataset uses any more goes, so nothing stale is left to make a refresh due.
        cursor.execute(sql.SQL("DELETE FROM {} WHERE dimension <> ALL(%s)").format(tables["values"]), [list(values)])
        cursor.execute(
            sql.SQL(
                "DELETE FROM {} WHERE resource <> ALL(%s) AND (resource LIKE 'DIMENSION/%%' OR resource LIKE %s)"
            ).format(tables["state"]),
            [
                [reference.values_resource(c) for c in values] + [reference.DATASET_PREFIX + n for n in used],
                reference.DATASET_PREFIX + "%",
            ],
        )
        stored = _store_values(cursor, tables, values, used, state)
    return {"indicators": len(indicators), "dimensions": len(listed), "values": stored}


def add_values(connection, values, used) -> None:
    """Add the values of dimensions new to the reference, and the datasets that use them; rows stored by code."""
    ensure(connection)
    with connection, connection.cursor() as cursor:
        ledger.take_lock(cursor, "reference")
        return _store_values(cursor, reference.names(connection.schema), values, used, [])


def _store_values(cursor, tables, values, used, state) -> dict:
    cursor.execute(sql.SQL("DELETE FROM {} WHERE dimension = ANY(%s)").format(tables["values"]), [list(values)])
    columns = ("dimension", "code", "title", "parent_dimension", "parent_code", "parent_title")
    stored = {}
    for code, rows in values.items():
        rows = [{**row, "Dimension": code} for row in _unique(rows, lambda r: r["Code"], _titled)]
        _insert(cursor, tables["values"], columns, rows)
        stored[code] = len(rows)
    state = state + [(reference.values_resource(code), n, None) for code, n in stored.items()]
    state += [(reference.DATASET_PREFIX + name, len(codes), ",".join(sorted(codes))) for name, codes in used.items()]
    if not state:
        return stored
    execute_values(
        cursor,
        sql.SQL(
            "INSERT INTO {} (resource, rows, detail) VALUES %s ON CONFLICT (resource) DO UPDATE "
            "SET rows = EXCLUDED.rows, detail = EXCLUDED.detail, refreshed_at = now()"
        )
        .format(tables["state"])
        .as_string(cursor),
        state,
    )
    return stored


def _titled(row) -> bool:
    return row.get("Title") is not None


def _unique(rows, key, prefer=lambda row: True) -> list:
    """One row per key: the first preferred one, else the first."""
    chosen = {}
    for row in rows:
        k = key(row)
        if k not in chosen or (prefer(row) and not prefer(chosen[k])):
            chosen[k] = row
    return list(chosen.values())


def _insert(cursor, table, columns, rows) -> None:
    if not rows:
        return
    fields = {"indicator_code": "IndicatorCode", "indicator_name": "IndicatorName", "language": "Language"}
    fields.update({c: "".join(part.capitalize() for part in c.split("_")) for c in columns if c not in fields})
    statement = sql.SQL("INSERT INTO {} ({}) VALUES %s").format(table, sql.SQL(", ").join(map(sql.Identifier, columns)))
    execute_values(cursor, statement.as_string(cursor), [tuple(row[fields[c]] for c in columns) for row in rows])
