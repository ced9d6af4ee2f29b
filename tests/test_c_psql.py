#!/usr/bin/env python3
"""Check the life_expectancy_at_birth table in PostgreSQL.

As a pytest test it runs the pipeline against the stand-in (real WHOSIS_000001
data when ../shared/gho_samples is present) into a fresh database, then checks
the table. As a script (`python3 tests/test_c_psql.py`) it checks the table in
the configured database and prints its row count and first ten rows.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from psycopg2 import sql  # noqa: E402

from src.contracts import schema  # noqa: E402

TABLE = "life_expectancy_at_birth"


def check_table(connection, table=TABLE) -> int:
    """Assert the table exists, has rows, has no duplicate natural keys and plausible values; return its rows."""
    with connection.cursor() as cursor:
        where = getattr(connection, "schema", None)  # the schema gho-etl loads into (src.db)
        name = sql.Identifier(where, table) if where else sql.Identifier(table)
        cursor.execute("SELECT to_regclass(%s)", [name.as_string(cursor)])
        assert cursor.fetchone()[0] is not None, f"table {table} does not exist: run the pipeline first"
        cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(name))
        count = cursor.fetchone()[0]
        assert count > 0, f"table {table} is empty"
        key = sql.SQL(", ").join(map(sql.Identifier, schema.NATURAL_KEY))
        cursor.execute(sql.SQL("SELECT count(*) FROM (SELECT DISTINCT {} FROM {}) AS k").format(key, name))
        assert cursor.fetchone()[0] == count, "duplicate natural keys found"
        cursor.execute(
            sql.SQL(
                "SELECT count(*) FILTER (WHERE numeric_value NOT BETWEEN 0 AND 120), "
                "count(*) FILTER (WHERE low > high OR numeric_value < low - 0.05 OR numeric_value > high + 0.05), "
                "count(*) FILTER (WHERE time_dim NOT BETWEEN 1900 AND 2100), "
                "count(*) FILTER (WHERE indicator_code IS NULL OR spatial_dim IS NULL) FROM {}"
            ).format(name)
        )
        implausible, bad_ranges, bad_years, missing_keys = cursor.fetchone()
        assert implausible == 0, f"{implausible} life expectancies outside 0-120 years"
        assert bad_ranges == 0, f"{bad_ranges} rows whose value lies outside [low, high]"
        assert bad_years == 0, f"{bad_years} rows with implausible years"
        assert missing_keys == 0
    return count


def test_life_expectancy_table(script_env, database_url):
    import psycopg2

    from tests.helpers import run_script

    for phase in ("extract", "transform", "load"):
        run_script(f"start_{phase}.py", env=script_env, check=0)
    connection = psycopg2.connect(database_url)
    try:
        assert check_table(connection) >= 1000
    finally:
        connection.close()


def main(argv=None) -> int:
    import argparse

    from src.commands.common import SETTINGS_HELP, fail, quiet_broken_pipe
    from src.db import Database
    from src.errors import GhoEtlError
    from src.settings import load_settings

    argparse.ArgumentParser(
        prog="test_c_psql.py",
        description=f"Check the {TABLE} table in the database in use (duplicates, plausible values) and print "
        "its row count, its columns and its first ten rows.",
        epilog="exit codes: 0 the table is sound, 1 it is missing, empty or implausible, or the database is away. "
        + SETTINGS_HELP,
    ).parse_args(argv)
    quiet_broken_pipe()
    try:
        database = Database(load_settings())
        connection = database.connect()
    except GhoEtlError as exc:
        return fail(exc, 1)
    try:
        count = check_table(connection)
    except AssertionError as exc:
        return fail(exc, 1)
    print(f"{TABLE}: {count} rows in {database.description()}")
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("SELECT * FROM {} LIMIT 10").format(sql.Identifier(connection.schema, TABLE)))
        names = [d[0] for d in cursor.description]
        print(" | ".join(names))
        for row in cursor.fetchall():
            print(" | ".join("" if v is None else str(v) for v in row))
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
