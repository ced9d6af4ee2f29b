"""StubServer: the stand-in in a background thread of the test process, and the in-process way to control it."""

import threading
from http.server import ThreadingHTTPServer

from utils.stub.handler import StubHandler
from utils.stub.state import StubState
from utils.stub.wire import API_PREFIX


class StubServer:
    """The stand-in, run in a background thread: `with StubServer() as stub: stub.base_url`."""

    def __init__(self, host="127.0.0.1", port=0, samples_dir=None, generated=None, use_samples=True, vary_every=0):
        self.state = StubState(samples_dir, generated, use_samples, vary_every)
        handler = type("BoundHandler", (StubHandler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.thread = None

    @property
    def base_url(self):
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{API_PREFIX}"

    def start(self):
        # A short poll interval: stop() (shutdown) returns within 0.05 s instead of 0.5 s.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="gho-stub", daemon=True
        )
        self.thread.start()
        return self

    def stop(self):
        self.state.stopping.set()  # drip and endless answers end
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- data ----------------------------------------------------------------
    def set_rows(self, code, rows):
        self.state.replace_rows(code, list(rows))

    def use_download(self, code, download):
        """Serve another saved download of the same indicator (e.g. one with other Ids)."""
        self.set_rows(code, self.state.library.rows(code, download))

    def delete_rows(self, code, ids) -> int:
        """Remove the rows of `code` with these Ids (the encoding cache follows); return how many went."""
        return self.state.delete_rows(code, ids)

    def insert_rows(self, code, rows) -> int:
        """Add rows to `code` (the encoding cache follows); return how many."""
        return self.state.insert_rows(code, rows)

    def prepare(self, code):
        """Encode an indicator's rows now (for `$orderby=Id`, what extract asks), not on the first request."""
        self.state.encoded_query(code, self.state.rows(code), None, "Id")

    def after_requests(self, n, action):
        """Run `action(stub)` once, right after the n-th /api/<CODE> data request from now has been answered."""
        self.state.actions.add(n, lambda: action(self))

    # --- faults and modes ------------------------------------------------------
    def add_fault(self, kind, times=1, path=None, **options):
        """Queue a fault (kinds and options: utils/stub/faults.py); raises ValueError for an unknown kind."""
        self.state.faults.add(kind, times, path, **options)

    def clear_faults(self):
        self.state.faults.clear()

    def set_max_page_size(self, size):
        """Server paging with nextLinks of `size` rows (None or 0: none), as set_mode(max_page_size=...)."""
        self.state.modes.set(max_page_size=size or None)

    def set_mode(self, **settings) -> dict:
        """Change how indicator data is answered (see utils/stub/modes.py); only the settings given change."""
        return self.state.modes.set(**settings)

    def reset_mode(self):
        self.state.modes.reset()

    @property
    def mode(self) -> dict:
        return self.state.modes.now()

    def reset(self):
        """As POST /_control/reset: no faults, an empty request log, no pending actions, the start-up mode."""
        self.state.reset()

    # --- the request log -------------------------------------------------------
    @property
    def requests(self):
        return self.state.request_log()

    @property
    def in_flight(self) -> dict:
        """{"in_flight": data requests being answered now, "max_in_flight": the most at once since the last reset}."""
        return self.state.in_flight_now()

    def clear_requests(self):
        with self.state.lock:
            self.state.requests.clear()
