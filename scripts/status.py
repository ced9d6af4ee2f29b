#!/usr/bin/env python3
"""Show the scheduler and each dataset's schedule, next due time, last job, waiting batches, rows and last change."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.commands.status import status_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(status_main())
