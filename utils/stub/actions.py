"""Data changes due right after the n-th data request from now: the upstream changing while a client pages.

Only /api/<CODE> requests count. A request that arrives while an action runs waits for it, so it sees the
change, which is what makes "rows deleted between page 2 and page 3" testable.
"""

import threading
import traceback


class PendingActions:
    """The actions waiting for a data request number, and the count of data requests so far."""

    def __init__(self, lock):
        self.lock = lock  # the state's lock, shared with the handler threads
        self.data_requests = 0  # /api/<CODE> requests so far
        self.pending = []  # {"at": data request number, "run": callable}
        self.run_lock = threading.Lock()  # one action at a time, and requests wait for a due one
        self.errors = []  # an action's error, kept for a test to see; the stand-in keeps serving

    def next_data_request(self) -> int:
        """Count a data request; return its number."""
        with self.lock:
            self.data_requests += 1
            return self.data_requests

    def add(self, n, run):
        """Call `run()` once, right after the n-th data request from now has been answered (now if n <= 0)."""
        with self.lock:
            self.pending.append({"at": self.data_requests + int(n), "run": run})
            now = self.data_requests
        if n <= 0:
            self.run_due(now)

    def run_due(self, answered):
        """Run the actions due once `answered` data requests have been answered; a later request that arrives
        while one runs waits for it, so it sees the change."""
        with self.run_lock:
            with self.lock:
                due = [action for action in self.pending if action["at"] <= answered]
                if not due:
                    return
                self.pending = [action for action in self.pending if action["at"] > answered]
            for action in due:
                try:
                    action["run"]()
                except Exception as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    traceback.print_exc()
