"""A progress bar for long work: a tqdm bar on a terminal, periodic plain log lines elsewhere.

Logs and CI output must stay readable, so a bar (with its carriage returns) is
only drawn when stderr is a terminal; otherwise a line is logged at most every
PLAIN_INTERVAL_S seconds.
"""

import logging
import sys
import time

PLAIN_INTERVAL_S = 10.0


class ProgressBar:
    def __init__(self, logger: logging.Logger, description: str, unit="rows", total=None, interval=PLAIN_INTERVAL_S):
        self.logger = logger
        self.description = description
        self.unit = unit
        self.count = 0
        self.interval = interval
        self._last_line = time.monotonic()
        self._bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=description, unit=f" {unit}", unit_scale=True, leave=False)

    def update(self, amount: int, note: str = ""):
        self.count += amount
        if self._bar is not None:
            self._bar.update(amount)
            if note:
                self._bar.set_postfix_str(note, refresh=False)
        elif time.monotonic() - self._last_line >= self.interval:
            self._last_line = time.monotonic()
            self.logger.info(
                "%s: %d %s so far%s", self.description, self.count, self.unit, f" ({note})" if note else ""
            )

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
