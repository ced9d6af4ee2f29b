"""The text of `scripts/status.py`: the scheduler, then one block per dataset (`collect_status` gives the data)."""

from src import unknown_datasets
from src.freshness import COUNT_TIMEOUT_MS

PHASES = ("extract", "transform", "load")
WAITING = (
    ("landing", "batch", "in landing (extract done, transform not yet)"),
    ("staging", "batch", "in staging (transform done, load not yet)"),
    (
        "landing_incomplete",
        "incomplete batch",
        "in landing (extract interrupted or running; the next extract resumes it)",
    ),
)


def format_status(data) -> str:
    scheduler = data["scheduler"]
    if scheduler["running"]:
        lines = [f"scheduler: running (pid {scheduler['pid']}, since {scheduler['since']})"]
    else:
        lines = ["scheduler: not running (start it with: python3 scripts/start_scheduler.py)"]
    if data["history_error"]:
        lines.append(f"run history unavailable: {data['history_error']}")
    for entry in data["datasets"]:
        lines += _dataset_block(entry, scheduler["running"], bool(data["history_error"]))
    lines.append("\n" + _reference_text(data.get("reference"), bool(data["history_error"])))
    for entry in data["unknown_datasets"]:
        held = ", ".join(f"{area} {entry[area]}" for area in (*unknown_datasets.AREAS, "downloads") if entry[area])
        lines.append(
            f"\n{entry['dataset']}: not in DATASET_CONFIG, its folders hold {held or 'nothing'}; "
            "remove them with: python3 scripts/status.py --remove-unknown"
        )
    return "\n".join(lines)


def _reference_text(found, history_unavailable) -> str:
    if found is None:
        if history_unavailable:
            return "reference (names of indicators and dimensions): unknown (database unavailable)"
        return "reference (names of indicators and dimensions): never refreshed (python3 scripts/indicators.py refresh)"
    when = "after each job once it is older than" if found["refresh_hours"] else "only by hand (GHO_REFERENCE_HOURS=0)"
    hours = f" {found['refresh_hours']:g} hours" if found["refresh_hours"] else ""
    return (
        f"reference: {found['indicators']} indicators, values of {', '.join(found['dimensions']) or 'no dimension'}; "
        f"refreshed {_when(found['refreshed_at'])}, again {when}{hours}"
    )


def _dataset_block(entry, scheduler_running, history_unavailable) -> list:
    state = "enabled" if entry["enabled"] else "disabled"
    lines = [f"\n{entry['dataset']} ({entry['indicator']} -> table {entry['table']}, {state})"]
    lines.append(f"  schedule: {entry['schedule']}")
    if entry["enabled"]:
        due = entry["next_run"] or "-"
        lines.append(f"  next run: {due}" + ("" if scheduler_running else " (if the scheduler starts now)"))
    if history_unavailable:
        lines.append("  last job: unknown (run history unavailable)")
    else:
        lines.append(f"  last job: {_job_text(entry['last_job'])}")
        run, job = entry["last_run"], entry["last_job"]
        if run and (job is None or run["run_id"] != job["run_id"]):
            lines.append(f"  latest run: {_run_text(run)}")
    lines.append(f"  waiting: {_waiting_text(entry['waiting'])}")
    if history_unavailable:
        lines.append("  table: unknown (database unavailable)")
    else:
        lines.append(f"  table: {_rows_text(entry)}")
        lines.append(f"  last changed: {_change_text(entry)}")
    return lines


def _when(moment) -> str:
    return moment.astimezone().isoformat(timespec="seconds")


def _took(seconds) -> str:
    return f"{seconds}s" if seconds is not None else "-"


_UNCHANGED_BY = {
    "probe": "nothing downloaded: the API counts {rows} rows and names the same latest row as the last download",
    "same pages": "the download equals the batch last loaded ({rows} rows): not transformed, not loaded",
}


def _job_text(job) -> str:
    if job is None:
        return "never"
    at = f"at {_when(job['started_at'])} ({job['trigger']})"
    if job["outcome"] == "failed":
        return f"failed {at}, after {_took(job['duration_s'])}, in {job['failed_phase']}: {job['error']}"
    if job["outcome"] == "unchanged" and job.get("unchanged_by"):
        why = _UNCHANGED_BY.get(job["unchanged_by"], "{rows} rows").format(rows=job["rows_checked"])
        return f"unchanged ({job['unchanged_by']}) {at}, took {_took(job['duration_s'])}: {why}"
    if job["outcome"] == "unchanged":
        figures = f"0 rows to write; {job['rows_checked']} rows checked"
    else:
        figures = f"{job['rows_written']} rows written of {job['rows_checked']} staged"
    if job["rows_rejected"]:
        figures += f"; {job['rows_rejected']} rows rejected"
    return f"{job['outcome']} ({figures}) {at}, took {_took(job['duration_s'])}"


def _run_text(run) -> str:
    """The latest run when it is not the last job: running, stopped after extract or transform, or abandoned."""
    at = f"{_when(run['started_at'])} ({run['trigger']})"
    phases = run["phases"]
    if run["outcome"] == "running":
        current = next(name for name, phase in phases.items() if phase["status"] == "running")
        return f"running since {at}, now in {current}"
    if run["outcome"] == "abandoned":
        gone = next(name for name, phase in phases.items() if phase["status"] == "abandoned")
        return f"abandoned at {at}: its process ended during {gone}; the next run resumes it"
    if run["outcome"] == "incomplete":
        done = ", ".join(name for name in PHASES if name in phases)
        left = " and ".join(name for name in PHASES if name not in phases and PHASES.index(name) > _last(phases))
        return f"incomplete at {at}: {done} done; {left} not run yet"
    return f"{run['outcome']} at {at}, nothing was waiting to load"


def _last(phases) -> int:
    return max(PHASES.index(name) for name in phases if name in PHASES)


def _waiting_text(waiting) -> str:
    parts = []
    for key, noun, where in WAITING:
        count = len(waiting[key])
        if count:
            parts.append(f"{count} {noun}{'' if count == 1 else 'es'} {where}")
    return "; ".join(parts) or "nothing (landing and staging are empty)"


def _rows_text(entry) -> str:
    if entry["rows_estimated"]:
        why = f"counting took over {COUNT_TIMEOUT_MS // 1000}s, waited on a lock or was refused"
        if entry["rows"] is None:
            return f"unknown ({why}, and PostgreSQL has no estimate yet)"
        return f"about {entry['rows']} rows (an estimate: {why})"
    if entry["rows"] is None:
        return "missing (no load has made it yet)"
    return f"{entry['rows']} rows"


def _change_text(entry) -> str:
    if entry["last_changed"] is None:
        return "unknown" if entry["rows"] else "never"
    by = entry["last_changed_by"]
    if by is None:
        return f"{_when(entry['last_changed'])} (the newest _loaded_at in the table; etl_batches no longer holds it)"
    return (
        f"{_when(entry['last_changed'])} "
        f"(batch {by['batch_id']}: {by['rows_inserted']} rows inserted, {by['rows_updated']} updated)"
    )
