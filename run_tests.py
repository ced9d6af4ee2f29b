#!/usr/bin/env python3
"""Run the test suite: `python3 run_tests.py [pytest arguments]`.

Exits non-zero when any test fails, and also when no test ran at all (pytest's
exit code 5), so a suite that silently collects nothing never passes.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def main(argv):
    import pytest

    named_paths = [a for a in argv if not a.startswith("-") and Path(a.split("::")[0]).exists()]
    targets = [] if named_paths else [str(ROOT / "tests")]
    code = pytest.main(["-p", "no:cacheprovider", "--rootdir", str(ROOT), *targets, *argv])
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("run_tests.py: no tests were collected; failing", file=sys.stderr)
        return 1
    return int(code)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
