#!/usr/bin/env python3
"""Run the test suite: `python3 run_tests.py [pytest arguments]`.

Exits non-zero when any test fails, and also when no test ran at all (pytest's
exit code 5), so a suite that silently collects nothing never passes.

Tests run in GHO_TEST_WORKERS processes (pytest-xdist; default: one per CPU,
at most 4), a test file's tests in one of them, since most tests wait on
subprocesses, PostgreSQL and local servers. `-n 0` (or GHO_TEST_WORKERS=0) runs
them in this process, in order.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MAX_WORKERS = 4


def _workers(argv) -> list:
    """xdist's arguments, unless the caller chose (-n / --numprocesses / -p no:xdist)."""
    if any(a == "-n" or a.startswith(("-n", "--numprocesses", "--dist")) for a in argv) or "no:xdist" in argv:
        return []
    chosen = os.environ.get("GHO_TEST_WORKERS", "").strip()
    if chosen and not chosen.isdigit():
        raise ValueError(f"GHO_TEST_WORKERS must be a whole number of processes (0: this one), not {chosen!r}")
    workers = int(chosen) if chosen else min(os.cpu_count() or 1, MAX_WORKERS)
    return ["-n", str(workers), "--dist", "loadfile"] if workers > 0 else []


def main(argv):
    import pytest

    named_paths = [a for a in argv if not a.startswith("-") and Path(a.split("::")[0]).exists()]
    targets = [] if named_paths else [str(ROOT / "tests")]
    try:
        workers = _workers(argv)
    except ValueError as exc:
        print(f"run_tests.py: {exc}", file=sys.stderr)
        return 2
    code = pytest.main(["-p", "no:cacheprovider", "--rootdir", str(ROOT), *workers, *targets, *argv])
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("run_tests.py: no tests were collected; failing", file=sys.stderr)
        return 1
    return int(code)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
