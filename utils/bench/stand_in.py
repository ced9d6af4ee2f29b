"""The GHO stand-in serving the generated rows, in its own process so its memory and CPU are not counted as ours."""

import json
import subprocess
import sys
import urllib.request
from contextlib import contextmanager

from utils.bench.console import BenchmarkError
from utils.bench.workload import INDICATOR, PROJECT_ROOT


class StandIn:
    """The GHO stand-in in its own process (so its memory and CPU are not ours)."""

    def __init__(self, rows, vary_every=0, latency=None):
        command = [
            sys.executable,
            str(PROJECT_ROOT / "utils" / "gho_stub.py"),
            "--port",
            "0",
            "--no-samples",
            "--generate",
            f"{INDICATOR}={rows}",
            "--vary-every",
            str(vary_every),
        ]
        if latency:
            command += ["--latency", str(latency)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if " at http" not in line:
            self.stop()
            raise BenchmarkError(f"the stand-in did not start: {line.strip() or 'no output'}")
        self.base_url = line.rsplit(" at ", 1)[1].strip()

    def request_log(self) -> list:
        """Every request the stand-in has answered so far but the control ones; each entry says when it arrived
        and when its answer was ready (`arrived`, `at`: the stand-in's monotonic clock)."""
        origin = self.base_url.rsplit("/api", 1)[0]
        with urllib.request.urlopen(origin + "/_control/requests", timeout=30) as answer:
            return json.load(answer)

    def most_in_flight(self) -> int:
        """The most data requests the stand-in has answered at once (its record since start or reset)."""
        origin = self.base_url.rsplit("/api", 1)[0]
        with urllib.request.urlopen(origin + "/_control/in_flight", timeout=30) as answer:
            return json.load(answer)["max_in_flight"]

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


@contextmanager
def serving(env, rows, vary_every=0, latency=None):
    """A stand-in for the length of the block, with the phases' `env` pointed at it; stopped however the block ends."""
    stand_in = StandIn(rows, vary_every=vary_every, latency=latency)
    try:
        env["GHO_API_BASE_URL"] = stand_in.base_url
        yield stand_in
    finally:
        stand_in.stop()
