"""`scripts/status.py`: the scheduler, and per dataset its schedule, next due time and freshness (`src.freshness`)."""

import argparse
import json
import sys

from src import freshness, reference, unknown_datasets
from src.commands.common import EXIT_FAILED, command
from src.commands.status_text import format_status
from src.db import Database
from src.errors import EXIT_OK
from src.redact import redact, redact_values
from src.scheduler import register, scheduler_process, state_file
from src.storage import open_store


def status_main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="status.py",
        description="Show whether the scheduler runs, and for each dataset its schedule, next due time, last job, "
        "batches waiting, rows and when its values last changed.",
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
            print(
                f"removed the landing, staging and rejects folders and the last-download record of {name} "
                "(no longer in DATASET_CONFIG)"
            )
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
        found = freshness.read(Database(settings), settings.datasets.values())
    except Exception as exc:  # status must show what it can
        history_error = str(exc)
        found = {}
    reference_state = None
    if history_error is None:
        try:
            reference_state = reference.state(settings, Database(settings))
        except Exception:  # the names are a convenience: status shows the rest
            reference_state = None
    store = open_store(settings)
    datasets = []
    for dataset in settings.datasets.values():
        known = found.get(dataset.name, freshness.NOTHING_KNOWN)
        datasets.append(
            {
                "dataset": dataset.name,
                "indicator": dataset.indicator,
                "table": dataset.table,
                "enabled": dataset.enabled,
                "schedule": dataset.schedule.text,
                "next_run": next_runs.get(dataset.name) if dataset.enabled else None,
                "last_run": known["last_run"],
                "last_job": known["last_job"],
                "waiting": freshness.waiting(store, dataset.name),
                **{key: known[key] for key in freshness.TABLE_UNKNOWN},
            }
        )
    return {
        "scheduler": {
            "running": bool(running),
            "pid": running[0] if running else None,
            "since": running[1].astimezone().isoformat(timespec="seconds") if running else None,
        },
        "datasets": datasets,
        "unknown_datasets": unknown_datasets.find(settings, store),
        "reference": reference_state,
        "history_error": history_error,
    }


def _next_runs_if_started_now(settings) -> dict:
    import schedule

    preview = schedule.Scheduler()
    for dataset in settings.datasets.values():
        if dataset.enabled:
            register(preview, dataset, lambda d: None)
    return {next(iter(job.tags)): job.next_run.astimezone().isoformat(timespec="seconds") for job in preview.get_jobs()}
