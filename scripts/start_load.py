#!/usr/bin/env python3
"""Merge staging batches into PostgreSQL, one transaction per batch, each batch exactly once."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.commands.run_phase import phase_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(phase_main("load", __doc__))
