#!/usr/bin/env python3
"""Start the scheduler: every enabled dataset's job on its schedule (see --help)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.commands.start_scheduler import start_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(start_main(Path(__file__).resolve()))
