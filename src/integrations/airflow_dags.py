"""Airflow DAGs for the enabled datasets of DATASET_CONFIG: one DAG per dataset, extract -> transform -> load.

A file in Airflow's dags/ folder (`dags/gho_etl.py` is one to copy) puts the project on `sys.path` and
calls `build_dags()`; each enabled dataset becomes the DAG `gho_etl_<dataset>`.

One DAG per dataset, not one DAG mapping its tasks over the datasets: a DAG has one schedule and each
dataset has its own; a dataset's runs, retries and failures stay its own (a failing indicator holds back
no other dataset's run, nor marks it failed); its history in the UI is its own. The cost, a DAG per
dataset to parse, is small: the file reads our configuration and builds three tasks per dataset.

Each task runs one phase as `scripts/start_<phase>.py` does (`src.integrations.phase_task`). A failed
phase raises `AirflowException` when our exception class is transient (the source or the database
unavailable, the phase already running elsewhere): Airflow retries it, with exponential backoff. Every
other failure (bad configuration, an unknown indicator, too many rejects, a bug) raises
`AirflowFailException`: no retry, as waiting changes nothing. Each phase resumes what a killed try left,
so a retry converges to the table one uninterrupted run gives.
"""

from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, CronTriggerTimetable, DeltaTriggerTimetable, task
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from src.integrations import phase_task
from src.integrations.airflow_schedule import translate
from src.runner import PHASES
from src.settings import load_settings

DAG_PREFIX = "gho_etl_"
# Runs start from the first due time after the DAG appears: catchup is off, a start date in the past is harmless.
START_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)
TASK_DEFAULTS = dict(
    retries=4,
    retry_delay=timedelta(minutes=1),
    retry_exponential_backoff=True,
    max_retry_delay=timedelta(minutes=30),
)


def timetable(dataset):
    """The Airflow timetable of a dataset's schedule (a ConfigError naming the dataset if it has none)."""
    schedule = translate(dataset)
    if schedule.every_seconds is not None:
        return DeltaTriggerTimetable(timedelta(seconds=schedule.every_seconds))
    if schedule.timezone:
        return CronTriggerTimetable(schedule.cron, timezone=schedule.timezone)
    return CronTriggerTimetable(schedule.cron, timezone="UTC")


def phase_callable(phase, dataset_name):
    """The task body: run the phase; a failure becomes the Airflow exception our exception tree calls for."""

    def run_phase(dag_run=None, **_context):
        try:
            return phase_task.run(phase, dataset_name, phase_task.job_id(dag_run.dag_id, dag_run.run_id))
        except phase_task.PhaseFailed as failed:
            raise (AirflowException if failed.retryable else AirflowFailException)(str(failed)) from None

    run_phase.__name__ = phase
    return run_phase


def dataset_dag(dataset, **task_args) -> DAG:
    """The DAG of one dataset: its schedule, and extract -> transform -> load."""
    with DAG(
        dag_id=DAG_PREFIX + dataset.name,
        schedule=timetable(dataset),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,  # two runs of one dataset would only wait on each other's phase locks
        default_args={**TASK_DEFAULTS, **task_args},
        tags=["gho-etl"],
        description=f"{', '.join(dataset.indicators)} -> table {dataset.table} ({dataset.schedule.text})",
        doc_md=__doc__,
    ) as dag:
        previous = None
        for phase in PHASES:
            current = task(task_id=phase)(phase_callable(phase, dataset.name))()
            if previous is not None:
                previous >> current
            previous = current
    return dag


def build_dags(settings=None, **task_args) -> dict:
    """`{dag_id: DAG}` for every enabled dataset; `task_args` override the tasks' retries and delays.

    Every schedule is translated before any DAG is made, so one that cannot be is a single error line
    (Airflow shows it as the file's import error) rather than a dataset quietly missing.
    """
    settings = settings or load_settings()
    datasets = settings.select()
    for dataset in datasets:
        translate(dataset)
    return {DAG_PREFIX + d.name: dataset_dag(d, **task_args) for d in datasets}
