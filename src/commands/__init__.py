"""The command lines behind `scripts/`: one module per command, one prologue (`common`) for all.

Exit codes (stable, scripts depend on them): 0 success; 1 a phase failed, 2
bad usage or configuration, 3 already running (each the `exit_code` of its
error class in `src.errors`); 130 interrupted (Ctrl-C, the shell's convention).
"""

from src import process_tuning

# The processes our commands run in are tuned before numpy is imported; a program that only imports
# gho-etl's modules (the benchmark's baselines) and a process Airflow runs are left as they are.
process_tuning.apply()
