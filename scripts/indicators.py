#!/usr/bin/env python3
"""Find WHO indicators and add them as datasets: search, show, add, remove, enable, disable (see --help)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.commands.indicators import indicators_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(indicators_main())
