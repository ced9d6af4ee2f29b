"""Load: apply each staging batch to its PostgreSQL table, exactly once.

`run` is the phase (`phase`); `batch` is one batch's transaction; `merge` the
SQL that applies it by mode; `copy_stream` the binary COPY; `tables` the
target's definition and evolution.
"""

from src.load.phase import run
from src.load.unchanged import record_if_loaded, table_holds_last_batch

__all__ = ["run", "record_if_loaded", "table_holds_last_batch"]
