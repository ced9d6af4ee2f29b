"""The scheduler: runs each enabled dataset's job on its schedule, unattended.

Built on the `schedule` library, with what it lacks for a long-running service:
- one scheduler per data directory (an flock held for the process's life; the
  pid file is only informational, so a stale one is never trusted),
- jobs in worker threads, and a job whose previous run is still going skips its
  slot instead of piling up,
- catch-up at start: a dataset whose last successful load (from `etl_runs`)
  is older than its period runs at once, since `schedule` forgets everything
  when the process stops,
- a loop that sleeps until the next job is due and wakes at once on SIGTERM or
  Ctrl-C, then lets running phases finish and exits cleanly.
"""

import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import schedule

from src.alerts import Alerts
from src.contracts.layout import Layout
from src.contracts.ledger import last_successful_loads
from src.errors import AlreadyRunning
from src.locks import lock_holders, try_lock
from src.storage.disk import write_json_atomic

log = logging.getLogger("gho_etl.scheduler")

MAX_SLEEP_S = 60.0
ACQUIRE_TRIES = 10


def pid_file(settings):
    return Layout(settings.data_dir).scheduler_pid


def state_file(settings):
    return Layout(settings.data_dir).scheduler_state


def scheduler_process(settings):
    """(pid, started_at) of the scheduler holding this data directory's lock, or None.

    Only the lock says whether a scheduler runs (the kernel drops it when the
    process dies). The pid file names it, and is believed only while the lock
    is held, and (where the kernel lists its locks) only for the process that
    holds it: a pid file left behind names nobody, whatever process now has
    that pid.
    """
    import psutil

    if not _scheduler_lock_held(settings):
        return None
    try:
        pid = int(pid_file(settings).read_text().split()[0])
        holders = lock_holders(Layout(settings.data_dir).scheduler_lock)
        if holders is not None and pid not in holders:
            return None  # the file names someone else (a new scheduler has not written its own yet)
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return pid, datetime.fromtimestamp(process.create_time(), timezone.utc)
    except (OSError, ValueError, IndexError, psutil.Error):
        return None


def scheduler_lock_held(settings) -> bool:
    """Whether some process holds the scheduler's lock (whether or not it can be named)."""
    return _scheduler_lock_held(settings)


def _scheduler_lock_held(settings) -> bool:
    """Whether a process holds the scheduler's lock (probed for an instant; `acquire` retries past a probe)."""
    path = Layout(settings.data_dir).scheduler_lock
    if not path.exists():
        return False
    handle = try_lock(path)
    if handle is None:
        return True
    handle.close()
    return False


def register(scheduler, dataset, job):
    """Add one dataset's job to a `schedule.Scheduler` according to its parsed schedule."""
    spec = dataset.schedule
    if spec.at:
        every = scheduler.every()
        unit = getattr(every, spec.unit)  # .day or .monday ... .sunday
        return unit.at(spec.at, spec.timezone).do(job, dataset).tag(dataset.name)
    every = scheduler.every(spec.interval)
    return getattr(every, spec.unit + "s").do(job, dataset).tag(dataset.name)


class Scheduler:
    def __init__(self, settings, runner, datasets, workers=2):
        self.settings = settings
        self.runner = runner
        self.datasets = datasets
        self.schedule = schedule.Scheduler()
        self.stop_event = threading.Event()
        self.executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="job")
        self.running = set()
        self.failures = 0
        self._lock = threading.Lock()
        self._lock_handle = None
        self.alerts = Alerts(settings.alert_webhook, settings.alert_on_recovery, settings.alert_timeout)

    # --- single instance ---------------------------------------------------------
    def acquire(self):
        """Become the one scheduler of this data directory, or raise AlreadyRunning."""
        handle = None
        for _ in range(ACQUIRE_TRIES):  # a status or stop may probe the lock for an instant
            handle = try_lock(Layout(self.settings.data_dir).scheduler_lock)
            if handle is not None:
                break
            time.sleep(0.05)
        if handle is None:
            running = scheduler_process(self.settings)
            pid = running[0] if running else "unknown"
            raise AlreadyRunning(f"scheduler already running (pid {pid})") from None
        self._lock_handle = handle
        path = pid_file(self.settings)
        if path.exists():
            log.warning("replacing stale pid file %s", path)
        write_json_atomic(path, os.getpid())

    def release(self):
        pid_file(self.settings).unlink(missing_ok=True)
        state_file(self.settings).unlink(missing_ok=True)
        if self._lock_handle:
            self._lock_handle.close()
            self._lock_handle = None

    # --- jobs --------------------------------------------------------------------
    def submit(self, dataset, reason="schedule"):
        """Start a dataset's job in a worker thread, unless its previous run is still going."""
        with self._lock:
            if dataset.name in self.running:
                log.warning(
                    "skipping this %s slot of %s: its previous run is still going",
                    reason,
                    dataset.name,
                    extra={"dataset": dataset.name},
                )
                return None
            self.running.add(dataset.name)
        log.info("starting job %s (%s)", dataset.name, reason, extra={"dataset": dataset.name})
        return self.executor.submit(self._run, dataset)

    def _run(self, dataset):
        try:
            outcomes = self.runner.run_job(dataset, should_stop=self.stop_event.is_set)
            if any(not o.ok for o in outcomes):
                self.failures += 1
            self.alerts.job_done(dataset, outcomes)
            return outcomes
        except Exception:  # a bug must not kill the worker silently
            log.exception("job %s crashed", dataset.name)
            self.failures += 1
            return []
        finally:
            with self._lock:
                self.running.discard(dataset.name)
            self._write_state()

    def _on_schedule(self, dataset):
        # Returns None: anything else returned to `schedule` could cancel the job.
        self.submit(dataset)

    def register_all(self):
        for dataset in self.datasets:
            register(self.schedule, dataset, self._on_schedule)
            log.info(
                "registered %s: %s (%s)",
                dataset.name,
                dataset.schedule.text,
                dataset.indicator,
                extra={"dataset": dataset.name},
            )

    def catch_up(self, run_all=False):
        """Run at once every dataset that is overdue (or all with run_all)."""
        if run_all:
            overdue = list(self.datasets)
        else:
            try:
                last = last_successful_loads(self.runner.database)
            except Exception as exc:
                log.warning("cannot read the run history for catch-up (%s); running every job now", exc)
                last = {}
            now = datetime.now(timezone.utc)
            overdue = [
                d
                for d in self.datasets
                if d.name not in last or (now - last[d.name]).total_seconds() > d.schedule.period_seconds
            ]
        for dataset in overdue:
            self.submit(dataset, reason="run-now" if run_all else "catch-up")

    def _write_state(self):
        jobs = {}
        for job in self.schedule.get_jobs():
            name = next(iter(job.tags), None)
            if name:
                jobs[name] = job.next_run.astimezone().isoformat() if job.next_run else None
        with self._lock:
            running = sorted(self.running)
        try:
            write_json_atomic(state_file(self.settings), {"pid": os.getpid(), "next_run": jobs, "running": running})
        except OSError as exc:
            log.warning("cannot write %s: %s", state_file(self.settings), exc)

    # --- main loop ---------------------------------------------------------------
    def install_signal_handlers(self):
        def request_stop(signum, frame):
            log.info("received %s: stopping", signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)

    def serve(self, run_now=False):
        """Run until asked to stop; return the number of failed job runs."""
        self.register_all()
        self.catch_up(run_all=run_now)
        log.info("scheduler running (pid %d) with %d job(s)", os.getpid(), len(self.datasets))
        while not self.stop_event.is_set():
            self.schedule.run_pending()
            self._write_state()
            idle = self.schedule.idle_seconds
            wait = MAX_SLEEP_S if idle is None else min(MAX_SLEEP_S, max(0.0, idle))
            self.stop_event.wait(wait)
        self.shutdown()
        return self.failures

    def shutdown(self):
        with self._lock:
            running = sorted(self.running)
        if running:
            log.info("waiting for the running phase of %s to finish", ", ".join(running))
        started = time.monotonic()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.schedule.clear()
        log.info("scheduler stopped (waited %.1fs for running jobs)", time.monotonic() - started)
