"""The benchmark, one job a module; `utils/benchmark.py` is its command line.

workload       what is generated and where the project is: the same work in every run
console        progress on stderr and BenchmarkError, the one way a step fails
database       the embedded PostgreSQL and the queries that read what a load wrote
stand_in       the GHO stand-in in its own process, serving the generated rows, and its request log
phases         the pipeline's own scripts run as processes, each recorded as a step
baselines      raw COPY and pandas.to_sql on the same rows, each in its own process
pipeline_runs  the first run, the merge re-run and the no-change re-run
refreshes      unchanged refreshes as a scheduled job runs them: same pages, and skipped by the change probe
peers          dlt on the same stand-in and server, from its own pinned environment (environment, measure)
one_size       every measurement for one size, in order, on a fresh database
latency        the latency mode: an extract whose every request waits, against its floor
many_datasets  the many-datasets mode: what each dataset costs beyond its rows
modes          which modes run, and their command-line options
targets        the targets and the checks of a result against them
results        a size's steps turned into rates, totals and checks
report         the table and lines printed on stdout
"""
