"""Everything the handler threads share: the rows, the faults, the mode, the pending actions, the request log.

One lock guards it all, as the parts change together (a reset clears faults, log and actions at once).
"""

import threading

from utils.stub.actions import PendingActions
from utils.stub.faults import FaultQueue
from utils.stub.indicator_rows import IndicatorRows
from utils.stub.modes import Modes


class StubState(IndicatorRows):
    """The indicator rows (see IndicatorRows) and the parts that change how requests for them are answered."""

    def __init__(self, samples_dir=None, generated=None, use_samples=True, vary_every=0):
        super().__init__(samples_dir, generated, use_samples, vary_every)
        self.faults = FaultQueue(self.lock)
        self.modes = Modes(self.lock)
        self.actions = PendingActions(self.lock)
        self.requests = []  # the request log: every request but the control ones
        self.stopping = threading.Event()  # set when the server stops: drip and endless answers end
        # "Indicator", "Dimension" or "DIMENSION/<code>/DimensionValues" -> rows served instead of the samples'.
        self.reference = {}
        self._sample_values = None

    def sample_values(self) -> dict:
        """Dimension code -> the dimension values saved in the samples (read once)."""
        if self._sample_values is None:
            self._sample_values = self.library.dimension_values()
        return self._sample_values

    def reset(self):
        """Faults, the request log, pending actions and the mode, as at start-up (the data stays)."""
        with self.lock:
            self.faults.pending.clear()
            self.requests.clear()
            self.actions.pending.clear()
        self.modes.reset()

    def request_log(self) -> list:
        """A copy of the request log, safe to read while requests are answered."""
        with self.lock:
            return list(self.requests)
