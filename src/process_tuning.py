"""Process-wide settings for a process that runs gho-etl's commands, applied before numpy is imported.

- OpenBLAS starts a worker thread per core when numpy is imported, and each
  spins for about 0.1 s of CPU before it sleeps. gho-etl does no linear
  algebra, so OpenBLAS gets one thread, unless the user set
  `OPENBLAS_NUM_THREADS` themselves.
- glibc's malloc hands memory back to the kernel as soon as the top of a heap
  is free. An extract allocates and frees a page body of several MB per
  request in several threads, so it faulted the same memory in again and
  again: about 230,000 page faults for 1,000,000 rows. Keeping 16 MB free at
  the top of each heap (`M_TOP_PAD`) cuts that to about 53,000, for a few MB
  more RSS (at most 16 MB per malloc arena). Setting it also fixes glibc's
  mmap threshold at 128 KiB instead of letting it grow, so large buffers are
  always mapped afresh; measured, that is what the fault count above already
  includes. A user who tunes malloc (any `MALLOC_*` variable or
  `GLIBC_TUNABLES`) keeps their own settings; another C library, or one
  preloaded in glibc's place, is left alone or tuned to no effect.

The figures are in docs/benchmark.md.
"""

import os
import sys

TOP_PAD_BYTES = 16 << 20
_M_TOP_PAD = -2  # glibc's malloc.h

# What `apply` did in this process: {"openblas_threads": value or None, "malloc_top_pad": bytes or None}.
applied = {}


def apply() -> dict:
    """Apply both settings once per process; return what was applied (None where the user's setting stands).

    A process Airflow runs (a task, the DAG processor) is Airflow's, shared with other DAGs: left as it is.
    """
    if not applied and "airflow" in sys.modules:
        applied.update(openblas_threads=None, malloc_top_pad=None)
    if not applied:
        applied["openblas_threads"] = None if "OPENBLAS_NUM_THREADS" in os.environ else "1"
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        applied["malloc_top_pad"] = TOP_PAD_BYTES if _pad_malloc_heaps() else None
    return applied


def _user_tunes_malloc() -> bool:
    return "GLIBC_TUNABLES" in os.environ or any(name.startswith("MALLOC_") for name in os.environ)


def is_glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError, AttributeError):  # not a name this C library knows; no os.confstr
        return False


def _pad_malloc_heaps() -> bool:
    """Set glibc's M_TOP_PAD; False when the user tuned malloc or the C library is not glibc."""
    if _user_tunes_malloc() or not is_glibc():
        return False
    try:
        import ctypes  # here: a Python built without ctypes still runs every command

        mallopt = ctypes.CDLL(None).mallopt  # the symbols the process already has: glibc's own
    except (ImportError, OSError, AttributeError):
        return False
    return mallopt(_M_TOP_PAD, TOP_PAD_BYTES) == 1
