"""Politeness to the API, process-wide: a bound on requests in flight, and one shared pause after trouble.

WHO's API is public and shared. Pages fetched side by side (GHO_PAGE_CONCURRENCY) and datasets
extracted side by side (GHO_EXTRACT_WORKERS) each have their own client, so the bound and the pause
live here, one `Politeness` per API origin for the whole process (`shared`):
- every request holds one of GHO_REQUESTS_IN_FLIGHT slots while it is on the wire, never while it
  waits out a backoff;
- a backoff (a 429 or 503 with Retry-After, or any retried trouble) pauses every request to that API
  from this process until it ends (`pause`), not only the thread that met the trouble: the server
  asked us to slow down, not one of our threads.
"""

import threading
import time
from contextlib import contextmanager

# A request waits for the pause to end at most this many times before it goes anyway: each wait ends
# a pause set by a backoff, and backoffs are bounded by GHO_MAX_ATTEMPTS per request.
MAX_WAITS = 1000

_shared = {}
_shared_lock = threading.Lock()


def shared(origin, in_flight: int) -> "Politeness":
    """The process's Politeness for this API origin and bound (one per pair, so tests of other bounds stay apart)."""
    key = (origin, int(in_flight))
    with _shared_lock:
        if key not in _shared:
            _shared[key] = Politeness(in_flight)
        return _shared[key]


class Politeness:
    def __init__(self, in_flight: int, clock=time.monotonic, sleep=time.sleep):
        self.in_flight = in_flight
        self._slots = threading.BoundedSemaphore(in_flight)
        self._lock = threading.Lock()
        self._not_before = 0.0  # clock() before which no request goes out
        self._clock = clock
        self._sleep = sleep

    def pause(self, seconds: float) -> None:
        """No request of this process goes out for `seconds` from now (a longer pause already set stays)."""
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + max(0.0, seconds))

    def _wait(self) -> float:
        with self._lock:
            return self._not_before - self._clock()

    @contextmanager
    def slot(self):
        """Hold a slot for one request on the wire, once no pause is set."""
        for _ in range(MAX_WAITS):
            wait = self._wait()
            if wait > 0:
                self._sleep(wait)
                continue
            self._slots.acquire()
            if self._wait() <= 0:
                break
            self._slots.release()  # a pause began while this waited for a slot: wait it out first
        else:
            self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()
