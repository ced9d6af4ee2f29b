"""The peers' own Python environments: dlt is measured, never depended on, so it lives in a virtual environment
the benchmark builds from its pinned requirements file, in a cache folder outside the project.

An environment is reused while the hash of its requirements file matches the one written into it once its
install finished; any other state (no hash, another hash, a half-built folder) is removed and built again.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from utils.bench.console import BenchmarkError, log

PEERS_DIR = Path(__file__).resolve().parent
DLT_REQUIREMENTS = PEERS_DIR / "requirements-dlt.txt"
DLT_PIPELINE = PEERS_DIR / "dlt_pipeline.py"
DLT_VERSION = "1.31.0"
HASH_FILE = "requirements.sha256"
INSTALL_TIMEOUT_S = 900


def default_cache():
    """Where environments are kept between runs: $XDG_CACHE_HOME (or ~/.cache)/gho-etl-bench."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gho-etl-bench"


def requirements_hash(requirements):
    return hashlib.sha256(Path(requirements).read_bytes()).hexdigest()


def peer_python(cache, name=f"dlt-{DLT_VERSION}", requirements=DLT_REQUIREMENTS):
    """The python of the environment `cache/name`, built from `requirements` unless already built from them."""
    folder = Path(cache) / name
    python = folder / "bin" / "python"
    wanted = requirements_hash(requirements)
    marker = folder / HASH_FILE
    if python.exists() and marker.exists() and marker.read_text().strip() == wanted:
        return python
    log(f"  building the {name} environment in {folder} (once; reused while {Path(requirements).name} is unchanged)")
    shutil.rmtree(folder, ignore_errors=True)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchmarkError(f"cannot make the peers' cache folder {folder.parent}: {exc.strerror}") from None
    _run([sys.executable, "-m", "venv", str(folder)], f"creating {folder}")
    # Every package is pinned in the file, so --no-deps installs exactly it and nothing resolved afresh.
    install = [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "-r", str(requirements)]
    _run(install + ["--disable-pip-version-check"], f"installing {Path(requirements).name}")
    marker.write_text(wanted + "\n")
    return python


def _run(command, what):
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"{what} took over {INSTALL_TIMEOUT_S} s") from None
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise BenchmarkError(f"{what} failed (exit {result.returncode}):\n{tail}")
