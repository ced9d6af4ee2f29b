"""The command lines behind `scripts/`: one module per command, one prologue (`common`) for all.

Exit codes (stable, scripts depend on them; each is the `exit_code` of an
error class in `src.errors`): 0 success, 1 a phase failed, 2 bad usage or
configuration, 3 already running, 130 interrupted.
"""
