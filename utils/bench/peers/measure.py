"""dlt measured on our ground: its rest_api source against the same stand-in, merging on the GHO natural key into
the same embedded PostgreSQL (a schema of its own per loader), once with its csv loader (COPY) and once with its
default one (insert_values). Each run starts from an empty schema, as our first run starts from an empty table.

With `peer_rows` fewer than the benchmark's rows, the stand-in serves only the first `peer_rows` of the same
generated rows, and the time for every row is scaled from the measured rate (as --baseline-rows does for
pandas.to_sql); the result says so.
"""

import json
import os

from src.contracts.schema import GHO_FIELDS, NATURAL_KEY, snake_case
from utils.bench.console import BenchmarkError, log
from utils.bench.peers.environment import DLT_PIPELINE, DLT_VERSION, peer_python
from utils.bench.stand_in import serving
from utils.bench.workload import DATASET, INDICATOR, PAGE_SIZE
from utils.measure import run_measured

DLT_LOADERS = ("csv", "default")
PEER_TIMEOUT_S = 3600


def measure_dlt(cache, url, rows, peer_rows, work):
    """{"dlt_csv": {...}, "dlt_default": {...}}: seconds, rows, peak RSS and the seconds scaled to `rows`."""
    python = peer_python(cache)
    measured_rows = peer_rows if peer_rows and peer_rows < rows else rows
    folder = work / "dlt"
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "GHO_", "DLT_", "RUNTIME__"))}
    env.update(RUNTIME__DLT_TELEMETRY="false", DLT_DATA_DIR=str(folder / "data"))
    results = {}
    log(f"  dlt {DLT_VERSION} peers on {measured_rows:,} rows...")
    stand_in_env = {}
    with serving(stand_in_env, measured_rows):
        for loader in DLT_LOADERS:
            job = _job(stand_in_env["GHO_API_BASE_URL"], url, loader, folder)
            step = _run_peer(python, job, env, folder)
            if step["rows"] != measured_rows:
                raise BenchmarkError(f"dlt ({loader} loader) loaded {step['rows']:,} rows, not {measured_rows:,}")
            step["seconds_for_all_rows"] = round(step["seconds"] * rows / measured_rows, 3)
            step["scaled_from_rows"] = measured_rows if measured_rows < rows else None
            results[f"dlt_{loader}"] = step
            log(f"  dlt_{loader}: {step['seconds']:.2f}s, peak RSS {step['peak_rss_mb']:.0f} MB")
    return results


def _job(base_url, url, loader, folder):
    return {
        "base_url": base_url,
        "indicator": INDICATOR,
        "table": DATASET,
        "dsn": url,
        "schema": f"dlt_{loader}",
        "loader": loader,
        "page_size": PAGE_SIZE,
        "primary_key": list(NATURAL_KEY),
        "key_fields": [field for field in GHO_FIELDS if snake_case(field) in NATURAL_KEY],
        "pipelines_dir": str(folder / "pipelines"),
    }


def _run_peer(python, job, env, folder):
    process, peak_mb = run_measured(
        [str(python), str(DLT_PIPELINE), json.dumps(job)], env=env, cwd=folder, timeout=PEER_TIMEOUT_S
    )
    if process.returncode != 0:
        tail = "\n".join(process.stderr.strip().splitlines()[-20:])
        raise BenchmarkError(f"dlt ({job['loader']} loader) exited {process.returncode}:\n{tail}")
    result = json.loads(process.stdout.strip().splitlines()[-1])
    return {
        "seconds": round(result["seconds"], 3),
        "rows": result["rows"],
        "peak_rss_mb": round(peak_mb, 1),
        "loader_file_format": result["loader_file_format"],
    }
