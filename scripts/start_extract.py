#!/usr/bin/env python3
"""Fetch each dataset's indicator from the GHO API into data/landing/<dataset>/<batch_id>/.

An interrupted batch is resumed from its last complete page."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.commands.run_phase import phase_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(phase_main("extract", __doc__))
