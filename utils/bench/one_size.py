"""Every measurement for one size, in order, on a fresh embedded PostgreSQL: the pipeline's first run and
the baselines on the very rows it loaded, in `repeats` interleaved rounds (see rounds), then the re-runs and
refreshes (which need the first load in place), then the peers (dlt) on the same stand-in rows and the same
server."""

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from utils.bench.console import BenchmarkError, log
from utils.bench.database import embedded_postgres, scalar
from utils.bench.peers.environment import default_cache
from utils.bench.peers.measure import measure_dlt
from utils.bench.pipeline_runs import measure_reruns
from utils.bench.results import summarise
from utils.bench.rounds import measure_rounds


@dataclass
class Peers:
    """Which peers to measure beside us (none: an empty tuple), on how many rows, and where their environments
    are kept."""

    names: tuple = ("dlt",)
    rows: Optional[int] = None
    cache: Optional[Path] = None


def run(rows, workdir, baseline_rows=None, peers=None, repeats=1):
    """Every measurement for one size; returns the result dict."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    peers = peers or Peers(names=())
    with embedded_postgres(work) as server:
        phases, url, same_rows, end_to_end = measure_rounds(server, work, rows, baseline_rows, repeats)
        measure_reruns(phases, rows, url, same_rows.parent)
        same_rows.unlink()
        result = summarise(rows, phases.steps, _measure_peers(peers, url, rows, work), end_to_end)
        result["postgresql"] = scalar(url, "SHOW server_version")
        return result


def _measure_peers(peers, url, rows, work):
    """The peers' figures; a peer that cannot be measured (its environment cannot be built, say) is reported as
    such, and its target as missed, without losing the figures measured before it."""
    if "dlt" not in peers.names:
        return {}
    try:
        return measure_dlt(peers.cache or default_cache(), url, rows, peers.rows, work)
    except BenchmarkError as exc:
        log(f"  dlt not measured: {exc}")
        return {"error": str(exc)}
