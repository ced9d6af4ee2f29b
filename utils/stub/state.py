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
        self.in_flight = 0  # /api/<CODE> data requests being answered now
        self.max_in_flight = 0  # the most of them at once since start-up or the last reset
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
        """Faults, the request log, pending actions, the mode and the most data requests in flight at once, as at
        start-up (the data stays)."""
        with self.lock:
            self.faults.pending.clear()
            self.requests.clear()
            self.actions.pending.clear()
            self.max_in_flight = self.in_flight
        self.modes.reset()

    def data_request_began(self):
        """Count a data request as in flight (until `data_request_ended`), and the most at once."""
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def data_request_ended(self):
        with self.lock:
            self.in_flight -= 1

    def in_flight_now(self) -> dict:
        """{"in_flight": data requests being answered now, "max_in_flight": the most at once so far}."""
        with self.lock:
            return {"in_flight": self.in_flight, "max_in_flight": self.max_in_flight}

    def request_log(self) -> list:
        """A copy of the request log, safe to read while requests are answered."""
        with self.lock:
            return list(self.requests)
