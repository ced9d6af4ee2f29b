"""The process-wide settings our commands apply (src/process_tuning.py), each seen in a fresh interpreter."""

import json
import os
import subprocess
import sys

import pytest

from src.process_tuning import is_glibc  # importing it applies nothing
from tests.helpers import PROJECT_ROOT

_THREADS_AFTER_NUMPY = "import numpy, os; print(len(os.listdir('/proc/self/task')))"
_APPLIED = "import json, src.commands; print(json.dumps(src.process_tuning.applied))"


def _python(code, **env_changes):
    """The last line a fresh interpreter prints for `code`, run in the project with no tuning of ours inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "OPENBLAS_")) and k != "GLIBC_TUNABLES"}
    env.update(env_changes)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(not os.path.isdir("/proc/self/task") or (os.cpu_count() or 1) < 2, reason="needs Linux, 2+ cores")
def test_numpy_imported_after_src_starts_no_openblas_threads():
    # The control: numpy alone starts OpenBLAS workers here, so the count below can tell.
    assert int(_python(_THREADS_AFTER_NUMPY)) > 1
    assert int(_python("import src.commands; " + _THREADS_AFTER_NUMPY)) == 1


def test_a_user_setting_of_openblas_threads_stands():
    applied = json.loads(_python(_APPLIED, OPENBLAS_NUM_THREADS="2"))
    assert applied["openblas_threads"] is None
    assert (
        _python("import src.commands, os; print(os.environ['OPENBLAS_NUM_THREADS'])", OPENBLAS_NUM_THREADS="2") == "2"
    )
    assert json.loads(_python(_APPLIED))["openblas_threads"] == "1"


@pytest.mark.skipif(not is_glibc(), reason="M_TOP_PAD is glibc's")
def test_malloc_heaps_are_padded_unless_the_user_tunes_malloc():
    assert json.loads(_python(_APPLIED))["malloc_top_pad"] == 16 << 20
    assert json.loads(_python(_APPLIED, MALLOC_ARENA_MAX="2"))["malloc_top_pad"] is None
    assert json.loads(_python(_APPLIED, GLIBC_TUNABLES="glibc.malloc.top_pad=0"))["malloc_top_pad"] is None


def test_a_program_that_only_imports_our_modules_is_left_as_it_is():
    """The benchmark's baselines import `src.contracts`: they must run as a hand-rolled script would."""
    code = (
        "import json, os, src.contracts.schema, src.process_tuning as tuning; "
        "print(json.dumps([tuning.applied, 'OPENBLAS_NUM_THREADS' in os.environ]))"
    )
    assert json.loads(_python(code)) == [{}, False]


def test_a_process_airflow_runs_is_left_as_it_is():
    """Airflow's DAG processor and task runners import airflow before our modules, and run other DAGs too."""
    code = (
        "import sys, types; sys.modules['airflow'] = types.ModuleType('airflow'); "
        "import json, os, src.commands, src.process_tuning as tuning; "
        "print(json.dumps([tuning.applied, 'OPENBLAS_NUM_THREADS' in os.environ]))"
    )
    assert json.loads(_python(code)) == [{"openblas_threads": None, "malloc_top_pad": None}, False]
