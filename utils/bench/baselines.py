"""The same rows loaded the way others would: raw COPY from a ready CSV (PostgreSQL's own limit) and
pandas.to_sql with its default method (the naive baseline).

Each runs in a child process (`benchmark.py --internal KIND ...`, see run_baseline_here), so neither its
memory nor its imports weigh on ours; that is also why the heavy imports sit inside the functions.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

from utils.bench.console import BenchmarkError, log
from utils.bench.workload import BENCHMARK_SCRIPT


def _columns_sql(names):
    from psycopg2 import sql

    from src.contracts import schema

    return sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(schema.pg_type(c))) for c in names)


def raw_copy(url, parquet_path):
    """COPY a ready CSV of the rows into a plain table of the same columns: what PostgreSQL itself can do."""
    import psycopg2
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from psycopg2 import sql

    csv_path = Path(parquet_path).with_suffix(".csv")
    table = pq.read_table(parquet_path)
    pacsv.write_csv(table, csv_path, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    names, rows = table.column_names, table.num_rows
    del table

    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS raw_copy")
        cursor.execute(sql.SQL("CREATE TABLE raw_copy ({})").format(_columns_sql(names)))
    connection.close()
    connection = psycopg2.connect(url)
    started = time.perf_counter()
    with connection, connection.cursor() as cursor, open(csv_path, "rb") as handle:
        cursor.copy_expert("COPY raw_copy FROM STDIN WITH (FORMAT csv)", handle, size=1 << 20)
    seconds = time.perf_counter() - started
    connection.close()
    csv_path.unlink()
    return seconds, rows


def to_sql(url, parquet_path, limit):
    """The naive baseline: pandas.to_sql with its default method, on the same rows."""
    import pyarrow.parquet as pq
    from sqlalchemy import create_engine

    frame = pq.read_table(parquet_path).to_pandas()
    if limit:
        frame = frame.head(limit)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    started = time.perf_counter()
    frame.to_sql("naive_to_sql", engine, index=False, if_exists="replace")
    seconds = time.perf_counter() - started
    engine.dispose()
    return seconds, len(frame)


def run_baseline(kind, url, parquet_path, limit=None):
    """Run a baseline in its own process, so neither its memory nor its imports weigh on ours
    (a child forked from a big parent would report the parent's pages as its own peak RSS)."""
    command = [sys.executable, str(BENCHMARK_SCRIPT), "--internal", kind, url, str(parquet_path)]
    command += [str(limit or 0)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchmarkError(f"the {kind} baseline failed:\n{result.stderr.strip()}")
    return json.loads(result.stdout)


def run_baseline_here(argv) -> int:
    """The child's side of run_baseline: `KIND URL PARQUET LIMIT` in, one JSON line of seconds and rows out."""
    kind, url, parquet_path, limit = argv
    if kind == "raw_copy":
        seconds, rows = raw_copy(url, parquet_path)
    else:
        seconds, rows = to_sql(url, parquet_path, int(limit))
    print(json.dumps({"seconds": seconds, "rows": rows}))
    return 0


def measure_baselines(steps, url, parquet_path, rows, baseline_rows):
    """Add the raw_copy and pandas_to_sql steps; to_sql runs on `baseline_rows` only when that is fewer."""
    raw = run_baseline("raw_copy", url, parquet_path)
    steps["raw_copy"] = {"seconds": raw["seconds"], "rows": raw["rows"], "peak_rss_mb": None}
    log(f"  raw_copy: {raw['seconds']:.2f}s")

    limit = baseline_rows if baseline_rows and baseline_rows < rows else None
    log(f"  pandas.to_sql on {limit or rows:,} rows (slow by design)...")
    naive = run_baseline("to_sql", url, parquet_path, limit)
    steps["pandas_to_sql"] = {"seconds": naive["seconds"], "rows": naive["rows"], "peak_rss_mb": None}
    log(f"  pandas_to_sql: {naive['seconds']:.2f}s")
