#!/usr/bin/env python3
"""Turn complete landing batches into typed staging Parquet in data/staging/<dataset>/ (rejects go to data/rejects/)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.commands.run_phase import phase_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(phase_main("transform", __doc__))
