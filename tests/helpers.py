"""Helpers the tests share: where things are, running a script as a user would, a fresh database.

A plain module (not conftest), so a test imports exactly what it uses.
"""

import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from src.contracts import landing  # noqa: E402
from src.storage.local import LocalFolder  # noqa: E402
from tests.pipeline_checks import create_database, drop_database  # noqa: E402

SAMPLES_DIR = PROJECT_ROOT.parent / "shared" / "gho_samples"
requires_samples = pytest.mark.skipif(
    not SAMPLES_DIR.is_dir(), reason=f"real GHO samples not found at {SAMPLES_DIR} (../shared/gho_samples)"
)
# Variables that would point a script at another database or config than the test's.
FOREIGN_ENV = (
    "DATABASE_URL",
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSSLMODE",
    "DATASET_CONFIG_FILE",
    "GHO_API_BASE_URL",
    "GHO_DATA_DIR",
    "GHO_LOG_DIR",
    "GHO_ENV_FILE",
    "GHO_DATASETS_FILE",
)


def sample(name):
    return SAMPLES_DIR / name


@contextmanager
def fresh_database(server, options=""):
    """A new, empty database on `server` for the block (`options` as in create_database), dropped after."""
    url = create_database(server, options)
    try:
        yield url
    finally:
        drop_database(server, url)


def run_script(name, *args, env, timeout=120, check=None):
    """Run scripts/<name> (or another project path) from the project root; return the CompletedProcess."""
    path = PROJECT_ROOT / name if "/" in name else PROJECT_ROOT / "scripts" / name
    result = subprocess.run(
        [sys.executable, str(path), *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check is not None and result.returncode != check:
        raise AssertionError(
            f"{name} {' '.join(args)} exited {result.returncode}, expected {check}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def write_dataset_config(tmp_path, config):
    path = tmp_path / "datasets.json"
    path.write_text(json.dumps(config))
    return path


def complete_batches(layout, dataset) -> list:
    """The folders of a dataset's complete landing batches, oldest first."""
    return [layout.landing(dataset) / b for b in landing.complete_batches(LocalFolder(layout.root), dataset)]


def page_answer(path) -> bytes:
    """The answer a landed page file holds, as the API sent it (`landing.unpack_page`)."""
    return landing.unpack_page(Path(path).read_bytes())


def page_rows(path) -> list:
    """The rows of a landed page file."""
    return json.loads(page_answer(path))["value"]
