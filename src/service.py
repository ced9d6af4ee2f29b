"""The scheduler's commands: start (detached, foreground or once), stop, status.

Scripts in scripts/ only call these mains; exit codes are the ones in src.cli.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

from src.cli import (
    EXIT_ALREADY_RUNNING,
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    SETTINGS_HELP,
    add_common_arguments,
    fail,
    prepare,
    quiet_broken_pipe,
    report,
)
from src.db import Database
from src.errors import AlreadyRunning, ConfigError
from src.logs import LOG_FILE_NAME, setup_logging
from src.pipeline import Runner
from src.runs import RunHistory, read_history
from src.scheduler import Scheduler, pid_file, register, scheduler_process, state_file
from src.settings import load_settings

START_WAIT_S = 30.0


# --- start -----------------------------------------------------------------------
def start_main(script_path, argv=None) -> int:
    quiet_broken_pipe()
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
    parser.add_argument("--workers", type=int, default=2, help="jobs that may run at the same time (default 2)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    try:
        settings, datasets = prepare(args)
    except ConfigError as exc:
        return fail(exc, EXIT_CONFIG)
    if not datasets:
        return fail("no enabled dataset in DATASET_CONFIG: nothing to schedule", EXIT_CONFIG)
    if args.once:
        return _run_once(settings, datasets)
    if args.foreground or os.environ.get(_DETACHED_CHILD) == "1":
        return _serve(settings, datasets, args)
    return _detach(settings, script_path, argv if argv is not None else sys.argv[1:])


def _run_once(settings, datasets) -> int:
    database = Database(settings)
    history = RunHistory(database, trigger="once")
    runner = Runner(settings, database, history)
    try:
        outcomes = [o for dataset in datasets for o in runner.run_job(dataset)]
    except KeyboardInterrupt:
        return fail("interrupted; every phase is resumable, run it again to finish", 130)
    finally:
        history.close()
    return report(outcomes)


def _serve(settings, datasets, args) -> int:
    database = Database(settings)
    history = RunHistory(database, trigger="scheduler")
    scheduler = Scheduler(settings, Runner(settings, database, history), datasets, workers=args.workers)
    try:
        scheduler.acquire()
    except AlreadyRunning as exc:
        return fail(exc, EXIT_ALREADY_RUNNING)
    scheduler.install_signal_handlers()
    try:
        scheduler.serve(run_now=args.run_now)
    finally:
        history.close()
        scheduler.release()
    return EXIT_OK


# Marks the background process `_detach` starts. An environment variable, not a hidden option:
# argparse would take a user's `--detach` as an abbreviation of it and run attached.
_DETACHED_CHILD = "_GHO_ETL_SCHEDULER_CHILD"


def _detach(settings, script_path, argv) -> int:
    running = scheduler_process(settings)
    if running:
        return fail(f"scheduler already running (pid {running[0]})", EXIT_ALREADY_RUNNING)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    output = settings.log_dir / "scheduler.out"
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


# --- stop ------------------------------------------------------------------------
def stop_main(argv=None) -> int:
    quiet_broken_pipe()
    parser = argparse.ArgumentParser(
        prog="stop_scheduler.py",
        description="Ask the scheduler to stop (SIGTERM): it lets the running phase finish, then exits.",
        epilog="exit codes: 0 stopped or not running, 1 still running after --timeout (without --force), "
        "2 bad usage or configuration.",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for it to stop (default 60)")
    parser.add_argument("--force", action="store_true", help="kill it (SIGKILL) if it has not stopped in time")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        return fail(exc, EXIT_CONFIG)
    running = scheduler_process(settings)
    if not running:
        if pid_file(settings).exists():
            pid_file(settings).unlink(missing_ok=True)
            print("scheduler is not running (removed a stale pid file)")
        else:
            print("scheduler is not running")
        return EXIT_OK
    pid = running[0]
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    print(f"stopping scheduler (pid {pid})...", flush=True)
    if _wait_gone(pid, args.timeout):
        print(f"scheduler (pid {pid}) stopped after {time.monotonic() - started:.1f}s")
        return EXIT_OK
    if not args.force:
        return fail(
            f"scheduler (pid {pid}) is still running after {args.timeout:g}s (a phase is finishing); "
            "wait, or run again with --force to kill it",
            EXIT_FAILED,
        )
    os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, 10)
    pid_file(settings).unlink(missing_ok=True)
    state_file(settings).unlink(missing_ok=True)
    print(f"scheduler (pid {pid}) did not stop within {args.timeout:g}s and was killed; every phase is resumable")
    return EXIT_OK


def _wait_gone(pid, timeout) -> bool:
    import psutil

    deadline = time.monotonic() + timeout
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


# --- status ----------------------------------------------------------------------
def status_main(argv=None) -> int:
    quiet_broken_pipe()
    parser = argparse.ArgumentParser(
        prog="status.py",
        description="Show whether the scheduler runs, each dataset's schedule, next due time and last run.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        return fail(exc, EXIT_CONFIG)
    setup_logging(settings, console=False)
    report_data = collect_status(settings)
    if args.json:
        print(json.dumps(report_data, indent=2, default=str))
    else:
        print(format_status(report_data))
    return EXIT_OK


def collect_status(settings) -> dict:
    running = scheduler_process(settings)
    next_runs = {}
    if running and state_file(settings).exists():
        try:
            next_runs = json.loads(state_file(settings).read_text()).get("next_run", {})
        except (OSError, ValueError):
            next_runs = {}
    if not running:
        next_runs = _next_runs_if_started_now(settings)
    history_error = None
    try:
        last_runs = _last_runs(Database(settings))
    except Exception as exc:  # status must show what it can
        history_error = str(exc)
        last_runs = {}
    datasets = []
    for dataset in settings.datasets.values():
        datasets.append(
            {
                "dataset": dataset.name,
                "indicator": dataset.indicator,
                "table": dataset.table,
                "enabled": dataset.enabled,
                "schedule": dataset.schedule.text,
                "next_run": next_runs.get(dataset.name) if dataset.enabled else None,
                "last_run": last_runs.get(dataset.name),
            }
        )
    return {
        "scheduler": {
            "running": bool(running),
            "pid": running[0] if running else None,
            "since": running[1].astimezone().isoformat(timespec="seconds") if running else None,
        },
        "datasets": datasets,
        "history_error": history_error,
    }


def _next_runs_if_started_now(settings) -> dict:
    import schedule

    preview = schedule.Scheduler()
    for dataset in settings.datasets.values():
        if dataset.enabled:
            register(preview, dataset, lambda d: None)
    return {next(iter(job.tags)): job.next_run.astimezone().isoformat(timespec="seconds") for job in preview.get_jobs()}


def _last_runs(database) -> dict:
    import psutil

    rows = read_history(
        database,
        """WITH latest AS (
               SELECT DISTINCT ON (dataset) dataset, run_id FROM {0} ORDER BY dataset, started_at DESC)
           SELECT r.dataset, r.run_id, r.phase, r.status, r.started_at, r.finished_at, r.rows_in,
                  r.rows_written, r.rows_rejected, r.error, r.pid, r.host, r.trigger
           FROM {0} r JOIN latest USING (dataset, run_id) ORDER BY r.started_at, r.id""",
    )
    host = socket.gethostname()
    runs = {}
    for (
        dataset,
        run_id,
        phase,
        status,
        started,
        finished,
        rows_in,
        written,
        rejected,
        error,
        pid,
        run_host,
        trigger,
    ) in rows:
        if status == "running" and run_host == host and not psutil.pid_exists(pid):
            status = "abandoned"
        run = runs.setdefault(
            dataset,
            {"run_id": run_id, "trigger": trigger, "started_at": started, "finished_at": None, "phases": {}},
        )
        run["phases"][phase] = {
            "status": status,
            "rows_in": rows_in,
            "rows_written": written,
            "rows_rejected": rejected,
            "error": error,
        }
        run["finished_at"] = finished
    for run in runs.values():
        statuses = [p["status"] for p in run["phases"].values()]
        run["outcome"] = next((s for s in ("failed", "abandoned", "running") if s in statuses), "succeeded")
        run["duration_s"] = (
            round((run["finished_at"] - run["started_at"]).total_seconds(), 1) if run["finished_at"] else None
        )
        load = run["phases"].get("load")
        run["rows_loaded"] = load["rows_written"] if load else None
        run["rows_staged"] = load["rows_in"] if load else None
    return runs


def format_status(data) -> str:
    scheduler = data["scheduler"]
    if scheduler["running"]:
        lines = [f"scheduler: running (pid {scheduler['pid']}, since {scheduler['since']})"]
    else:
        lines = ["scheduler: not running (start it with: python3 scripts/start_scheduler.py)"]
    if data["history_error"]:
        lines.append(f"run history unavailable: {data['history_error']}")
    for entry in data["datasets"]:
        state = "enabled" if entry["enabled"] else "disabled"
        lines.append(f"\n{entry['dataset']} ({entry['indicator']} -> table {entry['table']}, {state})")
        lines.append(f"  schedule: {entry['schedule']}")
        if entry["enabled"]:
            due = entry["next_run"] or "-"
            lines.append(f"  next run: {due}" + ("" if scheduler["running"] else " (if the scheduler starts now)"))
        run = entry["last_run"]
        if not run:
            lines.append("  last run: never")
            continue
        started = run["started_at"].astimezone().isoformat(timespec="seconds")
        duration = f"{run['duration_s']}s" if run["duration_s"] is not None else "-"
        rows = "-" if run["rows_loaded"] is None else f"{run['rows_loaded']} rows written of {run['rows_staged']}"
        lines.append(f"  last run: {run['outcome']} at {started} ({run['trigger']}), {rows}, took {duration}")
        for phase, detail in run["phases"].items():
            if detail["error"]:
                lines.append(f"    {phase}: {detail['error']}")
    return "\n".join(lines)
