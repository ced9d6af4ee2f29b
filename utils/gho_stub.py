#!/usr/bin/env python3
"""A stand-in for the WHO GHO OData API on 127.0.0.1, for offline runs and tests.

It serves the real samples from ../shared/gho_samples when present (otherwise
generated GHO-shaped rows) under /api/<INDICATOR>, /api/Indicator and
/api/DIMENSION/COUNTRY/DimensionValues, with $filter, $select, $orderby, $top,
$skip and $count=true (`"@odata.count": N` right after `@odata.context`: the
rows matching $filter, whatever $skip and $top), 404 for unknown indicators and
400 for bad queries, like GHO. By default it answers as GHO does: every row
asked for in one answer, no server paging.

This module is the command and the names other code imports; the stand-in
itself is the package utils/stub, one job a module (see its __init__): faults
in utils/stub/faults.py, modes in utils/stub/modes.py, the /_control/...
endpoints in utils/stub/control.py. Control it in-process with `StubServer`
(add_fault, set_mode, reset_mode, after_requests, delete_rows, insert_rows, ...)
or, for a stand-in run as its own process, over HTTP (`--help` lists the
endpoints, the fault kinds and the mode settings).

Run the pipeline against it:
    python3 utils/gho_stub.py --port 8765 &
    GHO_API_BASE_URL=http://127.0.0.1:8765/api python3 scripts/start_scheduler.py --once
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.stub.cli import main  # noqa: E402
from utils.stub.fault_answers import gzip_bomb_body  # noqa: E402
from utils.stub.faults import FAULT_KINDS  # noqa: E402
from utils.stub.modes import DEFAULT_MODE  # noqa: E402
from utils.stub.server import StubServer  # noqa: E402

__all__ = ["DEFAULT_MODE", "FAULT_KINDS", "StubServer", "gzip_bomb_body", "main"]

if __name__ == "__main__":
    sys.exit(main())
