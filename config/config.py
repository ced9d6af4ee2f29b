"""Every setting of gho-etl, read once from the environment (and `.env`).

Real environment variables win over `.env`, so a deployment can override a
developer's file without editing it. Values are only read and typed here;
`src.settings` validates them and turns them into the objects the pipeline uses,
so that one bad entry stops a run before any work starts.
"""

import json
import os
import stat
from pathlib import Path

from dotenv import load_dotenv

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# GHO_ENV_FILE points at another file (tests, several deployments on one host); named, it must exist.
ENV_FILE = Path(os.environ.get("GHO_ENV_FILE") or PROJECT_ROOT / ".env")
ENV_FILE_ERROR = None
if os.environ.get("GHO_ENV_FILE") and not ENV_FILE.is_file() and str(ENV_FILE) != os.devnull:
    ENV_FILE_ERROR = f"GHO_ENV_FILE={str(ENV_FILE)!r} is not a file (set it to {os.devnull} for none)"
elif ENV_FILE.is_file() or str(ENV_FILE) == os.devnull:
    load_dotenv(ENV_FILE, override=False)


def _env(name, default=None):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


# --- GHO API ---------------------------------------------------------------
GHO_API_BASE_URL = _env("GHO_API_BASE_URL", "https://ghoapi.azureedge.net/api").rstrip("/")
# Rows asked for per request ($top). The real API has no server paging, so a
# large indicator is fetched in pages of this size.
GHO_PAGE_SIZE = _env("GHO_PAGE_SIZE", "10000")
# Seconds one request may take in all, from connecting to the last byte of the answer.
GHO_HTTP_TIMEOUT = _env("GHO_HTTP_TIMEOUT", "60")
# Largest answer accepted, in bytes as sent and as decoded (unset: 4 KiB per row of GHO_PAGE_SIZE, 16 MiB at least).
GHO_MAX_PAGE_BYTES = _env("GHO_MAX_PAGE_BYTES")
GHO_MAX_ATTEMPTS = _env("GHO_MAX_ATTEMPTS", "6")
GHO_BACKOFF_BASE = _env("GHO_BACKOFF_BASE", "1.0")
GHO_BACKOFF_MAX = _env("GHO_BACKOFF_MAX", "60")
# Datasets extracted at the same time by start_extract.py.
GHO_EXTRACT_WORKERS = _env("GHO_EXTRACT_WORKERS", "3")
# Pages of one indicator fetched at the same time, each from its own range of Ids (1: one after another).
GHO_PAGE_CONCURRENCY = _env("GHO_PAGE_CONCURRENCY", "4")
# Requests on the wire to the API at the same time, over every dataset and page of the process.
GHO_REQUESTS_IN_FLIGHT = _env("GHO_REQUESTS_IN_FLIGHT", "8")

# --- Database --------------------------------------------------------------
DATABASE_URL = _env("DATABASE_URL")
# The schema our tables go in (made when missing); unset: the connection's current schema, normally public.
GHO_DB_SCHEMA = _env("GHO_DB_SCHEMA")
_LIBPQ_VARIABLES = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
}
# libpq keyword -> value, only for the variables that are set.
PSQL_SERVER_PARAMS = {
    keyword: _env(variable) for keyword, variable in _LIBPQ_VARIABLES.items() if _env(variable) is not None
}

# --- Local state -------------------------------------------------------------
DATA_DIR = Path(_env("GHO_DATA_DIR", str(PROJECT_ROOT / "data"))).expanduser()
LOG_DIR = Path(_env("GHO_LOG_DIR", str(PROJECT_ROOT / "logs"))).expanduser()
LOG_LEVEL = _env("GHO_LOG_LEVEL", "INFO")
LOG_MAX_BYTES = _env("GHO_LOG_MAX_BYTES", str(10 * 1024 * 1024))
LOG_BACKUP_COUNT = _env("GHO_LOG_BACKUP_COUNT", "5")

# --- Alerts ------------------------------------------------------------------
# A URL that takes a JSON POST (Slack and Teams incoming webhooks read its "text"); unset: no alerts.
ALERT_WEBHOOK = _env("GHO_ALERT_WEBHOOK")
ALERT_RECOVERY = _env("GHO_ALERT_RECOVERY", "true")
ALERT_TIMEOUT = _env("GHO_ALERT_TIMEOUT", "20")

# Hours the reference tables (indicator names, dimension titles) are kept before a job refreshes them; 0: only
# by hand (scripts/indicators.py refresh).
REFERENCE_HOURS = _env("GHO_REFERENCE_HOURS", "24")

# Days after a full download within which the change probe may skip one (0: every run downloads).
FULL_REFRESH_DAYS = _env("GHO_FULL_REFRESH_DAYS", "7")

# Run history (etl_runs) and ledger (etl_batches) kept: days, and runs per dataset at most.
HISTORY_DAYS = _env("GHO_HISTORY_DAYS", "90")
HISTORY_RUNS = _env("GHO_HISTORY_RUNS", "1000")

# --- Transform -----------------------------------------------------------------
# Share of a batch's rows that may be rejected before the whole batch fails.
REJECT_THRESHOLD = _env("GHO_REJECT_THRESHOLD", "0.05")

# --- Datasets ----------------------------------------------------------------
# name -> entry. Keys: indicator (required: a GHO code) or indicators (instead: a
# list of 1-50 distinct codes loaded into one table), enabled (default True),
# filter (OData $filter or None, applied to each indicator), table (default: the
# name), schedule (default "every day at 02:00"), mode ("merge" default,
# "replace" or "append"), columns (default: every column; else the staging
# columns to keep, the natural key's always kept; exact, so fields the API adds
# later are left out), rename (column -> new name, e.g. {"time_dim": "year"}).
DATASET_CONFIG = {
    "life_expectancy_at_birth": {
        "enabled": True,
        "indicator": "WHOSIS_000001",
        "filter": None,
        "table": "life_expectancy_at_birth",
        "schedule": "every day at 02:00",
        "mode": "merge",
    },
    "life_expectancy_at_60": {
        "enabled": False,
        "indicator": "WHOSIS_000015",
        "filter": None,
        "table": "life_expectancy_at_60",
        "schedule": "every day at 02:30",
        "mode": "merge",
    },
}

DATASET_CONFIG_FILE = _env("DATASET_CONFIG_FILE")
# A dataset file is a few KB; a bound keeps /dev/zero or a runaway file from filling memory.
DATASET_CONFIG_MAX_BYTES = 4 * 1024 * 1024
DATASET_CONFIG_ERROR = None


def read_dataset_file(path):
    """The file's JSON; ValueError with the reason. Opened without blocking, so a FIFO cannot hang us."""
    handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            raise ValueError("is not a regular file")
        with os.fdopen(handle, "rb", closefd=False) as stream:
            data = stream.read(DATASET_CONFIG_MAX_BYTES + 1)
    finally:
        os.close(handle)
    if len(data) > DATASET_CONFIG_MAX_BYTES:
        raise ValueError(f"is larger than {DATASET_CONFIG_MAX_BYTES // (1024 * 1024)} MiB")
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ValueError("is nested too deeply to be a dataset configuration") from None


if DATASET_CONFIG_FILE:
    # A broken file must not crash on import: the error is reported by the
    # start-up validation with one clear line.
    try:
        DATASET_CONFIG = read_dataset_file(DATASET_CONFIG_FILE)
    except (OSError, ValueError) as exc:
        DATASET_CONFIG_ERROR = f"DATASET_CONFIG_FILE {DATASET_CONFIG_FILE}: {exc}"

# Datasets added to the ones above (never replacing them), as scripts/indicators.py writes them: a
# new name is a whole entry; the name of a dataset above changes only the keys given ({"enabled": false}).
# Missing: none (indicators.py add makes it); os.devnull: none.
DATASETS_FILE = Path(_env("GHO_DATASETS_FILE", str(PROJECT_ROOT / "config" / "datasets.json"))).expanduser()
DATASETS_FILE_ENTRIES = {}
DATASETS_FILE_ERROR = None
if str(DATASETS_FILE) != os.devnull and os.path.lexists(DATASETS_FILE):
    try:
        DATASETS_FILE_ENTRIES = read_dataset_file(DATASETS_FILE)
    except (OSError, ValueError) as exc:
        DATASETS_FILE_ERROR = f"GHO_DATASETS_FILE {DATASETS_FILE}: {exc}"
