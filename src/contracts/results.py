"""What every phase reports to the runner: one shape, whatever the phase did."""

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class PhaseResult:
    """The work of one phase for one dataset.

    `rows_in` is what the phase read and `rows_written` what it produced
    (extract: rows landed, both; transform: rows read and staged; load: rows
    staged and rows inserted or updated). `details` is the phase's own record
    of its work, for logs and tests: the one batch an extract fetched, the list
    of batches a transform or a load went through.
    """

    rows_in: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    batches: int = 0
    source_count: Optional[int] = None
    details: Any = field(default_factory=list)
    # Why the phase had nothing to do although its input may have been new: "probe" (the change probe
    # found nothing new, so no download), "same pages" (the batch holds the pages of the last batch loaded).
    unchanged_by: Optional[str] = None
