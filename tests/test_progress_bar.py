"""Progress: a bar on a terminal, plain lines (no carriage returns) in logs and CI."""

import fcntl
import logging
import os
import pty
import struct
import subprocess
import sys
import termios

from src.progress_bar import ProgressBar
from tests.helpers import PROJECT_ROOT, run_script
from utils.gho_samples import generate_rows


def test_bar_only_on_a_terminal(script_env, stub):
    stub.set_rows("WHOSIS_000001", generate_rows("WHOSIS_000001", 20000))
    env = dict(script_env, GHO_PAGE_SIZE="2000")
    controller, terminal = pty.openpty()
    # A real terminal has a size; tqdm draws nothing on a 0-column one.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "start_extract.py")],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    assert process.wait(timeout=60) == 0
    os.close(controller)
    text = output.decode("utf-8", "replace")
    assert "rows/s]" in text  # tqdm's bar: "extract life_expectancy_at_birth: 0.00 rows [00:00, ? rows/s]"
    assert "extract life_expectancy_at_birth: 20000 rows" in text

    plain = run_script("start_extract.py", env=env, check=0)
    assert "\r" not in plain.stderr and "rows/s" not in plain.stderr
    assert plain.stdout.strip().startswith("extract life_expectancy_at_birth: 20000 rows")


def test_plain_lines_are_periodic(caplog):
    logger = logging.getLogger("gho_etl.test")
    with caplog.at_level(logging.INFO, logger="gho_etl.test"):
        with ProgressBar(logger, "work", interval=0.0) as bar:
            bar.update(5)
            bar.update(7, "page 2")
        with ProgressBar(logger, "quiet", interval=3600) as bar:
            bar.update(5)
    assert [r.getMessage() for r in caplog.records] == ["work: 5 rows so far", "work: 12 rows so far (page 2)"]
