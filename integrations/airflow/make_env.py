#!/usr/bin/env python3
"""Make the Airflow environment `.venv-airflow` (or the folder given), or say it is up to date.

It is made again only when the hash of requirements.txt and requirements-airflow.txt differs from the
one recorded when it was last made completely, so `make test` costs nothing once it exists. The hash
is written last: an install that failed or was killed half-way is made again from scratch.
"""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = (ROOT / "requirements.txt", Path(__file__).resolve().parent / "requirements-airflow.txt")
STAMP = ".requirements.sha256"


def requirements_hash() -> str:
    digest = hashlib.sha256()
    for path in REQUIREMENTS:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def main(argv) -> int:
    venv = Path(argv[0]) if argv else ROOT / ".venv-airflow"
    wanted = requirements_hash()
    stamp = venv / STAMP
    if stamp.is_file() and stamp.read_text().strip() == wanted and (venv / "bin" / "airflow").is_file():
        print(f"{venv.name}: up to date (requirements hash {wanted[:12]})")
        return 0
    shutil.rmtree(venv, ignore_errors=True)
    python = venv / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [str(python), "-m", "pip", "install", "--quiet", *(f"--requirement={path}" for path in REQUIREMENTS)],
        [str(python), "-m", "pip", "check"],
    ]
    for step in steps:
        print("+", " ".join(step[:4]), "...", flush=True)
        if subprocess.run(step).returncode != 0:
            print(f"error: {' '.join(step)} failed; {venv.name} is not usable", file=sys.stderr)
            return 1
    stamp.write_text(wanted + "\n")
    print(f"{venv.name}: made (requirements hash {wanted[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
