"""The faults waiting for requests, to test retries and hostile answers.

Each fault fires on `times` matching requests, after letting `after` through, on paths containing
`path` (all optional). The kinds and their options (how each answers: utils/stub/fault_answers.py):
  status       status (503), retry_after: an error status, optionally with Retry-After
  reset        a connection reset half-way through the body
  truncate     half the body, with a Content-Length that says so
  empty        an empty 200
  html         an HTML error page with status 200
  slow         seconds (5): wait, then answer normally
  stall        seconds (5): half the body, a pause, then the rest
  drip         seconds (1.0), limit_s (120): the real headers, then the body one
               byte every `seconds`; stops when the client goes or after limit_s
  endless      limit_bytes (2 GiB), write_timeout_s (30): 200 JSON without
               Content-Length, `{"value": [` then rows for ever, until a write
               fails, limit_bytes are out or the client stops reading
  gzip_bomb    inflated (512 MiB): Content-Encoding gzip, a small body that
               inflates to `inflated` bytes of `{"value": [` and spaces
  redirect     status (302), location (the request's own URL: a loop)
  error_body   status (500), body (text sent as UTF-8): a text/plain error body
  empty_value  count: 200 with `"value": []`; count omitted: the real
               @odata.count when $count=true was asked; count=0: 0; null: none
"""

FAULT_KINDS = (
    "status",
    "reset",
    "truncate",
    "empty",
    "html",
    "slow",
    "stall",
    "drip",
    "endless",
    "gzip_bomb",
    "redirect",
    "error_body",
    "empty_value",
)
FAULT_STATUS = {"status": 503, "redirect": 302, "error_body": 500}  # the other kinds answer 200


def recorded_status(fault) -> int:
    """The status a faulted request is logged with: the one its answer sends."""
    kind = fault["kind"]
    return int(fault.get("status", FAULT_STATUS[kind])) if kind in FAULT_STATUS else 200


class FaultQueue:
    """Faults in the order they were added; the first that matches a request fires."""

    def __init__(self, lock):
        self.lock = lock  # the state's lock, shared with the handler threads
        self.pending = []

    def add(self, kind, times=1, path=None, **options):
        """Queue one fault (raises ValueError for an unknown kind)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        with self.lock:
            self.pending.append({"kind": kind, "times": times, "path": path, **options})

    def add_posted(self, faults):
        """Queue the fault objects of a POST /_control/faults, all or none (raises ValueError); `times` is 1
        unless given."""
        for fault in faults:
            if not isinstance(fault, dict) or fault.get("kind") not in FAULT_KINDS:
                raise ValueError(f"a fault needs kind, one of {', '.join(FAULT_KINDS)}")
        with self.lock:
            self.pending.extend({"times": 1, **fault} for fault in faults)

    def clear(self):
        with self.lock:
            self.pending.clear()

    def take(self, path):
        """The fault that fires on a request for `path`, or None; counts the request against the fault."""
        with self.lock:
            for fault in self.pending:
                if fault.get("path") and fault["path"] not in path:
                    continue
                if fault.get("after", 0) > 0:
                    # Let this many matching requests through first.
                    fault["after"] -= 1
                    return None
                fault["times"] -= 1
                if fault["times"] <= 0:
                    self.pending.remove(fault)
                return dict(fault)
        return None
