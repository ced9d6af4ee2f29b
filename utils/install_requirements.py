#!/usr/bin/env python3
"""Install requirements.txt into the interpreter running this script, then verify every pin.

Verification reads each distribution's metadata (importlib.metadata), so
packages whose import name differs from their distribution name
(psycopg2-binary -> psycopg2, python-dotenv -> dotenv) are found correctly.
"""

import argparse
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(?:==\s*(?P<version>[^\s;#]+))?")


def parse_requirements(path: Path):
    """(name, pinned version or None) for each requirement line."""
    requirements = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        match = _REQUIREMENT.match(text)
        if not match or (match.end() != len(text) and not text[match.end() :].lstrip().startswith(";")):
            raise ValueError(f"{path.name}:{number}: cannot read {text!r} (use name==version)")
        requirements.append((match.group("name"), match.group("version")))
    return requirements


def verify(requirements):
    """Print one line per requirement; return the list of problems."""
    problems = []
    for name, pinned in requirements:
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            print(f"  MISSING  {name}" + (f" (wants {pinned})" if pinned else ""))
            problems.append(f"{name} is not installed")
            continue
        if pinned and installed != pinned:
            print(f"  WRONG    {name} {installed} (wants {pinned})")
            problems.append(f"{name} {installed} does not satisfy =={pinned}")
        else:
            print(f"  ok       {name} {installed}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-r", "--requirements", type=Path, default=ROOT / "requirements.txt")
    parser.add_argument("--check", action="store_true", help="only verify what is installed; install nothing")
    args = parser.parse_args(argv)
    try:
        requirements = parse_requirements(args.requirements)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    in_venv = sys.prefix != sys.base_prefix
    print(f"python: {sys.executable} ({'virtual environment' if in_venv else 'system interpreter'})")
    if not in_venv:
        print("note: a virtual environment is recommended: python3 -m venv .venv && . .venv/bin/activate")
    if not args.check:
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            "-r",
            str(args.requirements),
        ]
        if subprocess.call(command) != 0:
            print("error: pip install failed (see above)", file=sys.stderr)
            return 1
    problems = verify(requirements)
    if problems:
        print(
            f"error: {len(problems)} of {len(requirements)} requirements not satisfied: {'; '.join(problems)}",
            file=sys.stderr,
        )
        return 1
    print(f"all {len(requirements)} requirements satisfied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
