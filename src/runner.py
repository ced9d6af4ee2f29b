"""Running phases for datasets: the one place scripts and the scheduler share.

`run_phase` runs one phase for one dataset inside a log context and records
it in the run history; `run_job` chains extract -> transform -> load and stops
at the first failed phase. Errors come back as outcomes, not exceptions, so
one dataset's failure never stops another's.
"""

import errno
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Optional

from src import extract, load, reference, transform, unchanged
from src.contracts.results import PhaseResult
from src.errors import GhoEtlError, StorageError
from src.logs import log_context
from src.redact import redact
from src.run_history import new_run_id
from src.text import one_line

log = logging.getLogger("gho_etl.pipeline")

# Every phase is `run(settings, dataset, database) -> PhaseResult`, in job order.
PHASE_RUNNERS = {"extract": extract.run, "transform": transform.run, "load": load.run}
PHASES = tuple(PHASE_RUNNERS)


@dataclass
class PhaseOutcome(PhaseResult):
    """A phase's result as the runner saw it: whether it succeeded, how long it took, and why it failed."""

    dataset: str = ""
    phase: str = ""
    ok: bool = False
    seconds: float = 0.0
    error: Optional[str] = None
    exit_code: int = 0

    @classmethod
    def failed(cls, dataset, phase, error, exit_code) -> "PhaseOutcome":
        return cls(dataset=dataset, phase=phase, ok=False, error=error, exit_code=exit_code)

    def summary(self) -> str:
        """One line: dataset, rows, rejects, batches, duration (or the error)."""
        head = f"{self.phase} {self.dataset}:"
        if not self.ok:
            return f"{head} FAILED after {self.seconds:.1f}s: {self.error}"
        if self.unchanged_by:
            what, rows = (
                ("nothing downloaded", self.source_count)
                if self.phase == "extract"
                else ("nothing to do", self.rows_in)
            )
            return f"{head} unchanged ({self.unchanged_by}), {what}, {rows} rows as before, {self.seconds:.1f}s"
        rows = f"{self.rows_written} rows"
        if self.phase == "extract":
            rows += " (no source count)" if self.source_count is None else f" (source count {self.source_count})"
        if self.phase == "load":
            rows += f" written of {self.rows_in} staged" + (
                " (unchanged)" if self.rows_in and not self.rows_written else ""
            )
        return f"{head} {rows}, {self.rows_rejected} rejects, {self.batches} batch(es), {self.seconds:.1f}s"


_WRITE_ERRORS = {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EFBIG}


def _storage_error(exc):
    """A StorageError for an OSError on a file of ours (read-only, full, denied), else None.

    Sockets raise OSError too (as do requests' exceptions): one with no file and no disk errno is
    not a storage problem, and stays "unexpected" with its traceback.
    """
    if not isinstance(exc, OSError) or (exc.filename is None and exc.errno not in _WRITE_ERRORS):
        return None
    verb = "cannot write" if exc.errno in _WRITE_ERRORS else "cannot read or write"
    return StorageError(f"{verb} {exc.filename or 'a file of ours'}: {exc.strerror or exc}")


class Runner:
    """Holds what every phase needs: settings, the database and the run history."""

    def __init__(self, settings, database, history=None):
        self.settings = settings
        self.database = database
        self.history = history
        # While `reference_after_all` holds a list, jobs add their dataset to it instead of refreshing the
        # reference each: one check after all of them (a --once run).
        self._reference_due = None

    def run_phase(self, phase, dataset, run_id=None, work=None) -> PhaseOutcome:
        """Run `phase` (or `work`, in its place) for `dataset` and record it."""
        run_id = run_id or new_run_id()
        started = time.monotonic()
        with log_context(run_id=run_id, dataset=dataset.name, phase=phase):
            row_id = self.history.start(run_id, dataset.name, phase) if self.history else None
            try:
                result = (work or PHASE_RUNNERS[phase])(self.settings, dataset, self.database)
            except GhoEtlError as exc:
                outcome = PhaseOutcome.failed(dataset.name, phase, redact(one_line(exc)), exc.exit_code)
            except Exception as exc:
                storage = _storage_error(exc)
                if storage is not None:
                    outcome = PhaseOutcome.failed(dataset.name, phase, redact(one_line(storage)), storage.exit_code)
                else:  # an unexpected bug: keep the traceback in the log file
                    log.exception("%s of %s failed unexpectedly", phase, dataset.name)
                    message = f"unexpected {type(exc).__name__}: {exc} (traceback in the log file)"
                    outcome = PhaseOutcome.failed(dataset.name, phase, redact(one_line(message)), 1)
            else:
                shared = {f.name: getattr(result, f.name) for f in fields(PhaseResult)}
                outcome = PhaseOutcome(dataset=dataset.name, phase=phase, ok=True, **shared)
            outcome.seconds = time.monotonic() - started
            if self.history:
                self.history.finish(
                    row_id,
                    "succeeded" if outcome.ok else "failed",
                    rows_in=outcome.rows_in,
                    rows_written=outcome.rows_written,
                    rows_rejected=outcome.rows_rejected,
                    batches=outcome.batches,
                    error=outcome.error,
                    unchanged_by=outcome.unchanged_by,
                )
            log.log(
                logging.INFO if outcome.ok else logging.ERROR,
                outcome.summary(),
                extra={"rows": outcome.rows_written, "duration_s": round(outcome.seconds, 3), "ok": outcome.ok},
            )
        return outcome

    def run_phase_for_all(self, phase, datasets) -> list:
        """Run one phase for several datasets; extracts run side by side (GHO_EXTRACT_WORKERS).

        Extract waits on the network, so fetching a few datasets at once hides
        the latency; each dataset still asks for its pages one at a time, which
        keeps the load on the API bounded by the number of workers.
        """
        workers = min(self.settings.extract_workers, len(datasets)) if phase == "extract" else 1
        if workers <= 1:
            return [self.run_phase(phase, dataset) for dataset in datasets]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="extract") as pool:
            return list(pool.map(lambda dataset: self.run_phase(phase, dataset), datasets))

    def run_job(self, dataset, phases=PHASES, should_stop=None) -> list:
        """Run the phases of one dataset in order; stop at the first failure or a stop request.

        A stop request is honoured between phases: each phase is atomic and
        resumable, so the next run picks up where this one left off.
        """
        run_id = new_run_id()
        outcomes = []
        for phase in phases:
            if should_stop and should_stop():
                log.info("stop requested: %s of %s left for the next run", phase, dataset.name)
                break
            outcome = self.run_phase(phase, dataset, run_id)
            if (
                phase == "extract"
                and outcome.unchanged_by
                and tuple(phases) == PHASES
                and not unchanged.table_intact(self, dataset)
            ):
                outcome = self.run_phase(phase, dataset, run_id, work=unchanged.full_extract)
            outcomes.append(outcome)
            if not outcome.ok:
                break
            if phase == "extract" and tuple(phases) == PHASES:
                skipped = self._skip_unchanged(dataset, run_id, outcome)
                if skipped:
                    outcomes += skipped
                    break
        if outcomes and all(o.ok for o in outcomes) and outcomes[-1].phase == PHASES[-1]:
            if self._reference_due is not None:
                self._reference_due.append(dataset)
            else:
                with log_context(run_id=run_id, dataset=dataset.name, phase="reference"):
                    reference.refresh_if_due(self.settings, self.database, [dataset])
        return outcomes

    @contextmanager
    def reference_after_all(self):
        """For the block, the reference is checked once when it ends, for every dataset whose job completed in
        it, instead of after each job (a stop or a crash before the end leaves it to the next job)."""
        self._reference_due = []
        try:
            yield self
            completed = self._reference_due
        finally:
            self._reference_due = None
        with log_context(run_id=new_run_id(), phase="reference"):
            reference.refresh_if_due(self.settings, self.database, completed)

    def _skip_unchanged(self, dataset, run_id, extracted):
        """The transform and the load recorded as unchanged, without running, when the extract's probe found
        nothing new or its batch holds the pages of the last batch loaded; None when they must run."""
        if extracted.unchanged_by:
            rows, why = (extracted.source_count or 0), extracted.unchanged_by
            if not unchanged.nothing_waits(self.settings, dataset):
                return None  # an earlier batch still waits: transform and load take it
        else:
            rows, why = unchanged.same_pages(self.settings, dataset, self.database), "same pages"
            if rows is None:
                return None
        result = PhaseResult(rows_in=rows, batches=0, unchanged_by=why)
        return [self.run_phase(phase, dataset, run_id, work=lambda *_: result) for phase in PHASES[1:]]
