"""`scripts/stop_scheduler.py`: ask the scheduler to stop, wait for it, kill it with --force."""

import argparse
import os
import signal
import time

from src.commands.common import EXIT_FAILED, command, fail
from src.errors import EXIT_OK
from src.scheduler import pid_file, scheduler_lock_held, scheduler_process, state_file


def stop_main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="stop_scheduler.py",
        description="Ask the scheduler to stop (SIGTERM): it lets the running phase finish, then exits.",
        epilog="exit codes: 0 stopped or not running, 1 still running after --timeout (without --force), "
        "2 bad usage or configuration.",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for it to stop (default 60)")
    parser.add_argument("--force", action="store_true", help="kill it (SIGKILL) if it has not stopped in time")
    return command(
        parser,
        lambda invocation: _stop(invocation.settings, invocation.args),
        argv,
        logs=None,
        interrupted="interrupted",
        check_args=_check_timeout,
    )


def _check_timeout(parser, args):
    if not 0 <= args.timeout <= 86400:  # also refuses nan
        parser.error(f"--timeout must be between 0 and 86400 seconds, not {args.timeout:g}")


def _stop(settings, args) -> int:
    running = scheduler_process(settings)
    if not running and scheduler_lock_held(settings):
        return fail(
            "a scheduler holds the lock but its pid file does not name it (it may be starting): run again",
            EXIT_FAILED,
        )
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
