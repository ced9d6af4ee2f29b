"""`scripts/start_extract.py`, `start_transform.py`, `start_load.py`: one phase for the selected datasets."""

import argparse

from src.commands.common import (
    PHASE_EXIT_CODES,
    RESUMABLE,
    SETTINGS_HELP,
    add_dataset_arguments,
    add_full_refresh_argument,
    command,
    report,
    runner_for,
    with_full_refresh,
)
from src.errors import EXIT_OK


def phase_main(phase: str, description: str, argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"start_{phase}.py", description=description, epilog=f"{PHASE_EXIT_CODES} {SETTINGS_HELP}"
    )
    add_dataset_arguments(parser)
    if phase == "extract":
        add_full_refresh_argument(parser)

    def body(invocation):
        if not invocation.datasets:
            print(f"{phase}: no enabled dataset in DATASET_CONFIG; nothing to do")
            return EXIT_OK
        with runner_for(with_full_refresh(invocation), trigger=f"start_{phase}") as runner:
            return report(runner.run_phase_for_all(phase, invocation.datasets))

    return command(parser, body, argv, interrupted=f"{phase} {RESUMABLE}")
