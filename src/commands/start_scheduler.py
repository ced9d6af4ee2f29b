"""`scripts/start_scheduler.py`: run every enabled dataset's job on its schedule (detached, foreground, once)."""

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from src.commands.common import (
    EXIT_ALREADY_RUNNING,
    EXIT_CONFIG,
    EXIT_FAILED,
    SETTINGS_HELP,
    add_dataset_arguments,
    add_full_refresh_argument,
    command,
    fail,
    report,
    runner_for,
    with_full_refresh,
)
from src.alerts import Alerts
from src.errors import EXIT_OK
from src.logs import LOG_FILE_NAME
from src.scheduler import Scheduler, scheduler_process

START_WAIT_S = 30.0
SCHEDULER_OUT_MAX_BYTES = 1024 * 1024
# Marks the background process `_detach` starts. An environment variable, not a hidden option:
# argparse would take a user's `--detach` as an abbreviation of it and run attached.
_DETACHED_CHILD = "_GHO_ETL_SCHEDULER_CHILD"


def _parser():
    parser = argparse.ArgumentParser(
        prog="start_scheduler.py",
        description="Run every enabled dataset's job (extract -> transform -> load) on its schedule. "
        "By default the scheduler detaches into the background and this command returns at once.",
        epilog="exit codes: 0 started / all jobs succeeded, 1 a job failed (--once) or the scheduler failed to "
        "start, 2 bad usage or configuration, 3 already running. " + SETTINGS_HELP,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--foreground", action="store_true", help="stay attached (for systemd, containers, tmux)")
    mode.add_argument("--once", action="store_true", help="run every enabled job once now, then exit")
    parser.add_argument("--run-now", action="store_true", help="run every job at start, then keep to the schedule")
    parser.add_argument(
        "--workers", type=int, default=2, help="jobs that may run at the same time, with --once too (default 2)"
    )
    add_full_refresh_argument(parser, "with --once: download")
    add_dataset_arguments(parser)
    return parser


def start_main(script_path, argv=None) -> int:
    parser = _parser()

    def body(invocation):
        args, settings, datasets = invocation.args, invocation.settings, invocation.datasets
        if not datasets:
            return fail("no enabled dataset in DATASET_CONFIG: nothing to schedule", EXIT_CONFIG)
        if args.once:
            return _run_once(with_full_refresh(invocation), datasets, args.workers)
        if args.foreground or os.environ.get(_DETACHED_CHILD) == "1":
            return _serve(settings, datasets, args)
        return _detach(settings, script_path, argv if argv is not None else sys.argv[1:])

    # The detached scheduler logs to the JSON log only: its console is scheduler.out, which then holds
    # only what cannot go to the log (a crash before logging starts, an interpreter's last words).
    logs = "file" if os.environ.get(_DETACHED_CHILD) == "1" else "console"
    return command(parser, body, argv, logs=logs, check_args=_check_workers)


def _check_workers(parser, args):
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.full_refresh and not args.once:
        parser.error("--full-refresh goes with --once (a scheduler downloads in full every GHO_FULL_REFRESH_DAYS)")


def _run_once(settings, datasets, workers) -> int:
    """Every job once, `workers` side by side as the scheduler runs them: a job waits on the API, the disk
    and PostgreSQL in turn, so a second one fills those waits. Outcomes are reported in dataset order."""
    alerts = Alerts(settings.alert_webhook, settings.alert_on_recovery, settings.alert_timeout)

    def job(dataset):
        outcomes = runner.run_job(dataset)
        alerts.job_done(dataset, outcomes)
        return outcomes

    # Idle connections are handed to the next phase or job, and the reference is checked once at the end.
    with runner_for(settings, trigger="once") as runner, runner.database.pooled(), runner.reference_after_all():
        with ThreadPoolExecutor(max_workers=min(workers, len(datasets)), thread_name_prefix="job") as pool:
            jobs = [pool.submit(job, dataset) for dataset in datasets]
            outcomes = [outcome for future in jobs for outcome in future.result()]
    return report(outcomes)


def _serve(settings, datasets, args) -> int:
    with runner_for(settings, trigger="scheduler") as runner:
        scheduler = Scheduler(settings, runner, datasets, workers=args.workers)
        if runner.database.is_embedded:
            # Up while the scheduler runs, for analysts between jobs; a failure ends the start before any pid file.
            runner.database.start_embedded()
        scheduler.acquire()  # AlreadyRunning: exit 3, through `command`
        scheduler.install_signal_handlers()
        try:
            scheduler.serve(run_now=args.run_now)
        finally:
            scheduler.release()
    return EXIT_OK


def _detach(settings, script_path, argv) -> int:
    running = scheduler_process(settings)
    if running:
        return fail(f"scheduler already running (pid {running[0]})", EXIT_ALREADY_RUNNING)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    output = settings.log_dir / "scheduler.out"
    if output.exists() and output.stat().st_size > SCHEDULER_OUT_MAX_BYTES:
        os.replace(output, output.with_name(output.name + ".1"))  # one older copy is kept
    with open(output, "ab") as handle:
        child = subprocess.Popen(
            [sys.executable, str(script_path), *argv],
            env={**os.environ, _DETACHED_CHILD: "1"},
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=handle,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        code = child.poll()
        if code is not None:
            errors = [line for line in _tail(output) if line.startswith("error:")]
            return fail(
                errors[-1][len("error: ") :] if errors else f"the scheduler exited at once (code {code}); see {output}",
                code or EXIT_FAILED,
            )
        running = scheduler_process(settings)
        if running and running[0] == child.pid:
            print(
                f"scheduler started in the background (pid {child.pid}); "
                f"logs: {settings.log_dir / LOG_FILE_NAME}; stop it with: python3 scripts/stop_scheduler.py"
            )
            return EXIT_OK
        time.sleep(0.1)
    return fail(f"the scheduler did not report ready within {START_WAIT_S:.0f}s; see {output}", EXIT_FAILED)


def _tail(path, lines=20):
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []
