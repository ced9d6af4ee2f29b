"""What every command shares: the prologue (arguments, settings, logging), the wiring, the summary.

A command is a function `body(args) -> exit code` wrapped by `command`, which
parses the arguments, loads the settings and maps every error of ours to its
class's exit code with one `error: ...` line, so no command writes that twice.
"""

import argparse
import logging
import os
import signal
import sys
from contextlib import contextmanager
from dataclasses import dataclass, replace

from src.db import Database
from src.errors import EXIT_OK, AlreadyRunning, ConfigError, GhoEtlError
from src.logs import setup_logging
from src.redact import redact
from src.run_history import RunHistory
from src.runner import Runner
from src.settings import load_settings
from src.storage import check_store

EXIT_FAILED = GhoEtlError.exit_code
EXIT_CONFIG = ConfigError.exit_code
EXIT_ALREADY_RUNNING = AlreadyRunning.exit_code
EXIT_INTERRUPTED = 130
# Everything a command creates (data, staging, rejects, logs, locks, pid and state files) is
# the user's alone: folders 0700, files 0600. The data holds the API's answers and the logs
# the pipeline's history, which other local users have no business reading.
PRIVATE_UMASK = 0o077

SETTINGS_HELP = (
    "Settings come from the environment or .env (each one is in .env.example and README's Configuration), "
    "e.g. GHO_API_BASE_URL, GHO_PAGE_SIZE, GHO_HTTP_TIMEOUT (seconds for a whole answer), GHO_MAX_PAGE_BYTES, "
    "DATABASE_URL, DATASET_CONFIG_FILE. Logs: gho_etl.jsonl (JSON lines) in GHO_LOG_DIR, default logs/."
)
PHASE_EXIT_CODES = "exit codes: 0 success, 1 a phase failed, 2 bad usage or configuration, 3 already running."


@dataclass
class Invocation:
    """What a command body works with: its arguments, the settings, and the datasets they select."""

    args: argparse.Namespace
    settings: object
    datasets: list


def quiet_broken_pipe():
    """Let `script | head` end quietly, as Unix tools do, instead of with a traceback."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def add_dataset_arguments(parser):
    parser.add_argument(
        "--dataset",
        action="append",
        metavar="NAME",
        help="dataset from DATASET_CONFIG to process (repeatable; default: every enabled dataset)",
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="console shows warnings and errors only")
    verbosity.add_argument("-v", "--verbose", action="store_true", help="console shows debug messages")


def add_full_refresh_argument(parser, what="download"):
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help=f"{what} every dataset in full, whatever the change probe says (see GHO_FULL_REFRESH_DAYS)",
    )


def with_full_refresh(invocation):
    """The settings, with `full_refresh` on when the command was given --full-refresh."""
    if getattr(invocation.args, "full_refresh", False):
        return replace(invocation.settings, full_refresh=True)
    return invocation.settings


def _console_level(args):
    if getattr(args, "quiet", False):
        return logging.WARNING
    if getattr(args, "verbose", False):
        return logging.DEBUG
    return None


def fail(message, code) -> int:
    print(redact(f"error: {message}"), file=sys.stderr)
    return code


RESUMABLE = "interrupted; every phase is resumable, run it again to finish"


def command(parser, body, argv=None, logs="console", interrupted=RESUMABLE, check_args=None) -> int:
    """Parse, load settings, start logging, select datasets, run `body(invocation)`; return its exit code.

    Settings and logging come first, so a configuration error is one line and
    exit 2 before anything was touched. `logs`: "console" (the JSON log and
    the console), "file" (the JSON log only) or None. Ctrl-C ends with exit
    130 and `interrupted`. `check_args(parser, args)` refuses bad usage
    before the settings are read, as argparse does.
    """
    quiet_broken_pipe()
    os.umask(PRIVATE_UMASK)
    args = parser.parse_args(argv)
    if check_args is not None:
        check_args(parser, args)
    try:
        settings = load_settings()
        if logs:
            setup_logging(settings, _console_level(args), console=logs == "console")
        datasets = settings.select(getattr(args, "dataset", None)) if hasattr(args, "dataset") else []
        return body(Invocation(args, settings, datasets))
    except KeyboardInterrupt:
        return fail(interrupted, EXIT_INTERRUPTED)
    except GhoEtlError as exc:
        return fail(exc, exc.exit_code)


@contextmanager
def runner_for(settings, trigger):
    """A Runner on the configured database, recording runs with `trigger`; the history is closed after."""
    database = Database(settings)
    database.check()  # before any phase runs: exit 2, nothing done
    check_store(settings)  # likewise an object store that is missing (exit 2), refusing or unreachable (exit 1)
    history = RunHistory(database, trigger=trigger)
    try:
        yield Runner(settings, database, history)
    finally:
        history.close()


def report(outcomes) -> int:
    """Print one summary line per outcome; return the exit code of the worst."""
    code = EXIT_OK
    for outcome in outcomes:
        if outcome.ok:
            print(redact(outcome.summary()))
        else:
            print(redact(f"error: {outcome.summary()}"), file=sys.stderr)
            code = max(code, outcome.exit_code or EXIT_FAILED)
    return code
