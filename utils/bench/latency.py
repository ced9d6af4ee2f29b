"""The latency mode: an extract from a far server, where every request waits a fixed time before its answer.

The real API answers a page in seconds, most of it waiting, so what a user feels is how well the extract
overlaps its requests. The stand-in waits `latency` seconds before every data answer (its `--latency`); one
indicator of `rows` rows is paged by `page_size`, so it takes many requests. The floor is what no client
with the same requests and concurrency can beat: requests / concurrency x latency, with the requests the
extract says it made (its manifest's `requests`) and the concurrency it was configured with (the smaller of
GHO_PAGE_CONCURRENCY and GHO_REQUESTS_IN_FLIGHT, 1 where a setting does not exist). The stand-in's own
record of the most requests it answered at once, and of how many it answered, are reported beside them.
"""

import json
import subprocess
import sys
from pathlib import Path

from src.contracts.layout import Layout
from utils.bench.console import BenchmarkError, log
from utils.bench.database import create_bench_database, embedded_postgres
from utils.bench.phases import PhaseRecorder, pipeline_env
from utils.bench.stand_in import serving
from utils.bench.targets import TARGETS, check
from utils.bench.workload import DATASET, PROJECT_ROOT

CONCURRENCY_SETTINGS = ("GHO_PAGE_CONCURRENCY", "GHO_REQUESTS_IN_FLIGHT")
# What the extract's process would be configured with: config/config.py reads the same environment.
CONFIGURED = "import json, config.config as c; print(json.dumps({n: getattr(c, n, None) for n in %r}))"


def measure_latency(work, latency=0.5, rows=40_000, page_size=1_000) -> dict:
    """The latency result: the extract's seconds, its requests, the floor and the check against it."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)  # as root, the embedded server's own account must enter it
    log(f"latency: {rows:,} rows in pages of {page_size:,}, every request waiting {latency:g}s...")
    with embedded_postgres(work) as server:
        url = create_bench_database(server)
        phases = PhaseRecorder(pipeline_env(url, work), work / "logs" / "gho_etl.jsonl")
        phases.env["GHO_PAGE_SIZE"] = str(page_size)
        with serving(phases.env, rows, latency=latency) as stand_in:
            phases.measure("latency_extract", "extract", rows)
            most_in_flight = stand_in.most_in_flight()
            answered = len(stand_in.request_log())
    step = phases.steps["latency_extract"]
    requests = _manifest_requests(work)
    concurrency = configured_concurrency(phases.env)
    floor = requests / concurrency * latency
    ratio = round(step["seconds"] / floor, 3)
    return {
        "mode": "latency",
        "latency_s": latency,
        "rows": rows,
        "page_size": page_size,
        "requests": requests,
        "stand_in_requests": answered,
        "concurrency": concurrency,
        "most_in_flight": most_in_flight,
        "floor_seconds": round(floor, 3),
        "extract_seconds": round(step["seconds"], 3),
        "peak_rss_mb": step["peak_rss_mb"],
        "checks": {"latency_extract_vs_floor": check(ratio, "<=", TARGETS["latency_extract_vs_floor"])},
    }


def configured_concurrency(env) -> int:
    """The requests the extract may have in flight for one dataset, as its own configuration reads `env`."""
    result = subprocess.run(
        [sys.executable, "-c", CONFIGURED % (CONCURRENCY_SETTINGS,)],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise BenchmarkError(f"reading the concurrency settings failed:\n{result.stderr.strip()}")
    values = [int(v) for v in json.loads(result.stdout).values() if v not in (None, "")]
    return min(values) if values else 1


def _manifest_requests(work):
    manifests = sorted(Layout(work / "data").landing(DATASET).glob("*/manifest.json"))
    if len(manifests) != 1:
        raise BenchmarkError(f"expected one landing manifest, found {len(manifests)}")
    requests = json.loads(manifests[0].read_text()).get("requests")
    if not requests:
        raise BenchmarkError("the landing manifest records no requests")
    return requests


def table(result) -> str:
    """The latency mode's figures, for a person."""
    lines = [
        f"gho-etl latency: {result['rows']:,} rows in pages of {result['page_size']:,}, "
        f"every request waiting {result['latency_s']:g}s",
        f"{'extract s':>10}{'requests':>10}{'concurrency':>13}{'most in flight':>16}{'floor s':>10}{'x floor':>9}",
        f"{result['extract_seconds']:>10.2f}{result['requests']:>10}{result['concurrency']:>13}"
        f"{result['most_in_flight']:>16}{result['floor_seconds']:>10.2f}"
        f"{result['checks']['latency_extract_vs_floor']['value']:>9.3f}",
        "floor = requests / concurrency x latency (requests from the landing manifest)",
    ]
    for name, found in result["checks"].items():
        lines.append(f"  {'met ' if found['met'] else 'MISS'} {name}: {found['value']} (target {found['target']})")
    return "\n".join(lines)
