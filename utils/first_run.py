#!/usr/bin/env python3
"""`make run` and `make demo`: every enabled dataset once, then where the data is and how to query it.

With `--demo` the stand-in (`utils/gho_stub.py`, serving the real samples in
../shared/gho_samples when present) runs on a free port of 127.0.0.1 for the
run and stops after it, for machines without the internet.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STUB_START_S = 30


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="first_run.py",
        description="Run every enabled dataset once, then say where the data is and how to query it.",
        epilog="exit codes: those of start_scheduler.py --once (0 all jobs succeeded).",
    )
    parser.add_argument("--demo", action="store_true", help="against the stand-in API on 127.0.0.1")
    args = parser.parse_args(argv)
    environment = dict(os.environ)
    stub = _start_stub(environment) if args.demo else None
    try:
        code = subprocess.call(
            [sys.executable, str(ROOT / "scripts" / "start_scheduler.py"), "--once"], env=environment
        )
    finally:
        if stub is not None:
            stub.terminate()
            stub.wait(timeout=10)
    if code == 0:
        _say_where(environment)
    return code


def _start_stub(environment):
    stub = subprocess.Popen(
        [sys.executable, str(ROOT / "utils" / "gho_stub.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = stub.stdout.readline().strip()  # "GHO stand-in serving N indicators (...) at http://127.0.0.1:P/api"
    if " at http://" not in line:
        stub.kill()
        raise SystemExit(f"error: the stand-in did not start: {line or 'no output'}")
    print(line)
    environment["GHO_API_BASE_URL"] = line.rsplit(" at ", 1)[1]
    return stub


def _say_where(environment) -> None:
    from src.contracts.reference import labeled_view_name
    from src.db import Database
    from src.settings import load_settings

    os.environ.update(environment)
    settings = load_settings()
    database = Database(settings)
    enabled = [d for d in settings.datasets.values() if d.enabled]
    tables = [d.table for d in enabled]
    # The first table's names for these columns: a dataset may rename them or leave some out.
    shown = [enabled[0].column_for(c) for c in ("spatial_dim", "time_dim", "numeric_value")]
    python = os.path.relpath(sys.executable)  # the virtualenv's, which has the requirements
    print(f"\nThe data is in {database.description()}, table(s): {', '.join(tables)}.")
    print("Query it:")
    print(f"  {python} scripts/db.py psql -c 'SELECT {', '.join(c for c in shown if c)} FROM {tables[0]} LIMIT 5'")
    labelled = ", ".join(["location_name"] + [c for c in shown[1:] if c])
    print(
        f'  {python} scripts/db.py psql -c "SELECT {labelled} '
        f"FROM {labeled_view_name(tables[0])} WHERE location_name ILIKE '%germany%' LIMIT 5\""
    )
    print(f"  {python} scripts/indicators.py search water   (then: indicators.py add CODE, to load another)")
    print(f'  {python} scripts/db.py start   (keeps it up; then: psql "$({python} scripts/db.py uri)")')
    print("More in README.md, section 'Query the data'.")


if __name__ == "__main__":
    sys.exit(main())
