#!/usr/bin/env python3
"""Stop the scheduler cleanly (see --help)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.commands.stop_scheduler import stop_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(stop_main())
