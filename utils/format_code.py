#!/usr/bin/env python3
"""Format the project with black and lint it with flake8 (settings: pyproject.toml, .flake8).

`--check` changes nothing and exits non-zero on any formatting difference or
lint finding; CI runs it so main stays clean.
"""

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["config", "dags", "integrations", "scripts", "src", "tests", "utils", "run_tests.py"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report only; exit 1 on any difference or finding")
    args = parser.parse_args(argv)
    black = [sys.executable, "-m", "black", "--quiet"] + (["--check", "--diff"] if args.check else []) + TARGETS
    flake8 = [sys.executable, "-m", "flake8"] + TARGETS
    black_code = subprocess.call(black, cwd=ROOT)
    flake8_code = subprocess.call(flake8, cwd=ROOT)
    if black_code or flake8_code:
        what = [name for name, code in (("black", black_code), ("flake8", flake8_code)) if code]
        print(f"format_code: {' and '.join(what)} found problems", file=sys.stderr)
        return 1
    print("format_code: black and flake8 clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
