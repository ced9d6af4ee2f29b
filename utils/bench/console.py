"""How the benchmark talks while it runs: progress on stderr (stdout is kept for the table), failures as one error."""

import sys


class BenchmarkError(Exception):
    """A step could not be measured; the command prints it as one `error:` line and exits 1."""


def log(message):
    """Progress for the person waiting; on stderr so stdout holds only the results."""
    print(message, file=sys.stderr, flush=True)
