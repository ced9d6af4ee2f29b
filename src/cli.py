"""What the `scripts/start_*.py` commands share: arguments, exit codes, summaries.

Exit codes (stable, scripts depend on them):
  0  success
  1  a phase failed (API, data or database trouble): the message says which
  2  bad usage or configuration: nothing was done
  3  already running elsewhere: nothing was done
"""

import argparse
import logging
import signal
import sys

from src.db import Database
from src.errors import ConfigError, GhoEtlError
from src.logs import setup_logging
from src.pipeline import Runner
from src.runs import RunHistory
from src.settings import load_settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_ALREADY_RUNNING = 3

SETTINGS_HELP = (
    "Settings come from the environment or .env (each one is in .env.example and README's Configuration), "
    "e.g. GHO_API_BASE_URL, GHO_PAGE_SIZE, GHO_HTTP_TIMEOUT (seconds for a whole answer), GHO_MAX_PAGE_BYTES, "
    "DATABASE_URL, DATASET_CONFIG_FILE. Logs: gho_etl.jsonl (JSON lines) in GHO_LOG_DIR, default logs/."
)
EPILOG = "exit codes: 0 success, 1 a phase failed, 2 bad usage or configuration, 3 already running. " f"{SETTINGS_HELP}"


def quiet_broken_pipe():
    """Let `script | head` end quietly, as Unix tools do, instead of with a traceback."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def add_common_arguments(parser):
    parser.add_argument(
        "--dataset",
        action="append",
        metavar="NAME",
        help="dataset from DATASET_CONFIG to process (repeatable; default: every enabled dataset)",
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="console shows warnings and errors only")
    verbosity.add_argument("-v", "--verbose", action="store_true", help="console shows debug messages")


def console_level(args):
    if getattr(args, "quiet", False):
        return logging.WARNING
    if getattr(args, "verbose", False):
        return logging.DEBUG
    return None


def fail(message, code) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def prepare(args):
    """Settings, logging and the datasets to work on; raises ConfigError."""
    settings = load_settings()
    setup_logging(settings, console_level(args))
    datasets = settings.select(args.dataset)
    return settings, datasets


def phase_main(phase: str, description: str, argv=None) -> int:
    quiet_broken_pipe()
    parser = argparse.ArgumentParser(prog=f"start_{phase}.py", description=description, epilog=EPILOG)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings, datasets = prepare(args)
    except ConfigError as exc:
        return fail(exc, EXIT_CONFIG)
    if not datasets:
        print(f"{phase}: no enabled dataset in DATASET_CONFIG; nothing to do")
        return EXIT_OK
    database = Database(settings)
    history = RunHistory(database, trigger=f"start_{phase}")
    runner = Runner(settings, database, history)
    try:
        outcomes = runner.run_phase_for_all(phase, datasets)
    except KeyboardInterrupt:
        return fail(f"{phase} interrupted; every phase is resumable, run it again to finish", 130)
    except GhoEtlError as exc:
        return fail(exc, exc.exit_code)
    finally:
        history.close()
    return report(outcomes)


def report(outcomes) -> int:
    """Print one summary line per outcome; return the exit code of the worst."""
    code = EXIT_OK
    for outcome in outcomes:
        if outcome.ok:
            print(outcome.summary())
        else:
            print(f"error: {outcome.summary()}", file=sys.stderr)
            code = max(code, outcome.exit_code or EXIT_FAILED)
    return code
