"""dlt's rest_api source loading the stand-in's indicator into PostgreSQL: the peer the benchmark measures us against.

Run only with the python of the benchmark's own dlt environment (utils/bench/peers/environment.py), never with
ours: dlt is not one of our dependencies. It takes one JSON argument and prints one JSON line:

    {"base_url": ..., "indicator": ..., "dsn": ..., "schema": ..., "loader": "csv" | "default",
     "page_size": 10000, "table": ..., "primary_key": [columns], "key_fields": [GHO fields], "pipelines_dir": ...}
    -> {"seconds": ..., "rows": ..., "loader_file_format": ...}

The configuration is what a dlt user would write for GHO: offset paging with `$top`/`$skip` (the API's own
paging), `@odata.count` as the total, `write_disposition="merge"` on the GHO natural key. `seconds` is the
wall time of `pipeline.run` (extract, normalize and load), interpreter start-up and imports excluded, as
for our phases.
"""

import json
import os
import sys
import time

os.environ.setdefault("RUNTIME__DLT_TELEMETRY", "false")  # no telemetry calls out of the benchmark

import dlt  # noqa: E402
from psycopg2.extensions import parse_dsn  # noqa: E402
from dlt.sources.rest_api import rest_api_source  # noqa: E402

FILE_FORMATS = {"csv": "csv", "default": None}  # None: the destination's default (insert_values for postgres)


def key_filler(fields):
    """dlt's primary key columns are NOT NULL, and GHO leaves unused dimensions null (Dim2, Dim3, DataSourceDim):
    a dlt user keying on GHO's natural key has to put something there; an empty string is what we chose."""

    def fill(row):
        for field in fields:
            if row.get(field) is None:
                row[field] = ""
        return row

    return fill


def gho_source(job):
    """The rest_api source of one GHO indicator, paged by `$top`/`$skip` in the API's Id order."""
    return rest_api_source(
        {
            "client": {
                "base_url": job["base_url"].rstrip("/") + "/",
                "paginator": {
                    "type": "offset",
                    "limit": job["page_size"],
                    "offset_param": "$skip",
                    "limit_param": "$top",
                    "total_path": "'@odata.count'",
                },
            },
            "resource_defaults": {"primary_key": job["primary_key"], "write_disposition": "merge"},
            "resources": [
                {
                    "name": job["table"],
                    "endpoint": {
                        "path": job["indicator"],
                        "data_selector": "value",
                        "params": {"$count": "true", "$orderby": "Id"},
                    },
                    "processing_steps": [{"map": key_filler(job["key_fields"])}],
                }
            ],
        }
    )


def credentials(dsn):
    """dlt's credentials fields from a libpq URL. The embedded server listens on a socket folder, which dlt's URL
    building drops as a host, so it goes in the query (`?host=`), where libpq reads it."""
    parts = parse_dsn(dsn)
    fields = {"database": parts["dbname"], "username": parts.get("user"), "password": parts.get("password", "")}
    host = parts.get("host", "localhost")
    if host.startswith("/"):
        fields.update(host="localhost", query={"host": host})
    else:
        fields.update(host=host, port=int(parts.get("port", 5432)))
    return fields


def run(job):
    pipeline = dlt.pipeline(
        pipeline_name=f"gho_bench_{job['loader']}",
        destination=dlt.destinations.postgres(credentials=credentials(job["dsn"])),
        dataset_name=job["schema"],
        pipelines_dir=job["pipelines_dir"],
    )
    file_format = FILE_FORMATS[job["loader"]]
    started = time.perf_counter()
    info = pipeline.run(gho_source(job), loader_file_format=file_format)
    seconds = time.perf_counter() - started
    info.raise_on_failed_jobs()
    with pipeline.sql_client() as client:
        rows = client.execute_sql(f"SELECT count(*) FROM {client.make_qualified_table_name(job['table'])}")[0][0]
    jobs = [j.job_file_info for p in info.load_packages for j in p.jobs["completed_jobs"]]
    used = sorted({j.file_format for j in jobs if j.table_name == job["table"]})
    return {"seconds": seconds, "rows": rows, "loader_file_format": ",".join(used)}


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
