"""`scripts/status.py`: the scheduler, each dataset's schedule, next due time and last run."""

import argparse
import json
import socket
import sys

from src import unknown_datasets
from src.commands.common import EXIT_FAILED, command
from src.contracts.ledger import latest_runs
from src.db import Database
from src.errors import EXIT_OK
from src.redact import redact, redact_values
from src.scheduler import register, scheduler_process, state_file
from src.storage import open_store


def status_main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="status.py",
        description="Show whether the scheduler runs, each dataset's schedule, next due time and last run.",
        epilog="exit codes: 0 shown (also when the run history cannot be read: it says so), "
        "2 bad usage or configuration.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument(
        "--remove-unknown",
        action="store_true",
        help="delete the landing, staging and rejects folders of datasets no longer in DATASET_CONFIG",
    )
    return command(
        parser,
        lambda invocation: _show(invocation.settings, invocation.args),
        argv,
        logs="file",
        interrupted="interrupted",
    )


def _show(settings, args) -> int:
    if args.remove_unknown:
        removed, busy = unknown_datasets.remove(settings, open_store(settings))
        for name in removed:
            print(f"removed the landing, staging and rejects folders of {name} (no longer in DATASET_CONFIG)")
        for name in busy:
            print(f"error: left {name}: a phase of it is running; run again when it ends", file=sys.stderr)
        if not removed and not busy:
            print("nothing to remove: every folder belongs to a dataset in DATASET_CONFIG")
        return EXIT_FAILED if busy else EXIT_OK
    report_data = collect_status(settings)
    if args.json:
        print(json.dumps(redact_values(report_data), indent=2, default=str))
    else:
        print(redact(format_status(report_data)))
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
        "unknown_datasets": unknown_datasets.find(settings, open_store(settings)),
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

    rows = latest_runs(database)
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
    for entry in data["unknown_datasets"]:
        held = ", ".join(f"{area} {entry[area]}" for area in unknown_datasets.AREAS if entry[area])
        lines.append(
            f"\n{entry['dataset']}: not in DATASET_CONFIG, its folders hold {held or 'nothing'}; "
            "remove them with: python3 scripts/status.py --remove-unknown"
        )
    return "\n".join(lines)
