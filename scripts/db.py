#!/usr/bin/env python3
"""The database in use: uri, psql, start, stop, status (see --help)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.commands.db import db_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(db_main())
