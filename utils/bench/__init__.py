"""The benchmark, one job a module; `utils/benchmark.py` is its command line.

workload       what is generated and where the project is: the same work in every run
console        progress on stderr and BenchmarkError, the one way a step fails
database       the embedded PostgreSQL and the queries that read what a load wrote
stand_in       the GHO stand-in in its own process, serving the generated rows
phases         the pipeline's own scripts run as processes, each recorded as a step
baselines      raw COPY and pandas.to_sql on the same rows, each in its own process
pipeline_runs  the first run, the merge re-run and the no-change re-run
one_size       every measurement for one size, in order, on a fresh database
targets        the targets and the checks of a result against them
results        a size's steps turned into rates, totals and checks
report         the table and lines printed on stdout
"""
