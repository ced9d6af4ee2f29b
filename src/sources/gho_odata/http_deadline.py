"""A wall-clock deadline for a whole HTTP exchange, enforced on the socket itself.

requests and urllib3 time out each socket read, not the exchange: a server that
sends one byte before each read times out holds a request for as long as it
likes. Several of those places are inside urllib3 and http.client, where no code
of ours runs between reads: the status line and headers, a chunk-size line,
chunked trailers (which http.client reads without a limit on their number), gzip
data that inflates to nothing. So a `Deadline` does not wait for a chance to
check the clock: when it expires it shuts the exchange's sockets down, which
ends any blocked read at once, and the caller reports the deadline.

Sockets are found through the connection class of a mounted adapter
(`mount_deadline_adapters`): each connection registers its socket with the
deadline active in its thread when it connects and before each request.
"""

import socket
import threading
import time

import requests
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_active = threading.local()


class Deadline:
    """`with Deadline(seconds) as deadline:` ... `deadline.expired` says whether it cut the exchange."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._sockets = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._previous = None
        self._ends = None

    def __enter__(self):
        self._previous = getattr(_active, "deadline", None)
        _active.deadline = self
        self._ends = time.monotonic() + self.seconds
        self._timer.start()
        return self

    def remaining(self) -> float:
        """Seconds left (0 once expired), for per-read timeouts that end no later than the deadline."""
        return 0.0 if self.expired else max(0.0, self._ends - time.monotonic())

    def __exit__(self, *exc_info):
        self._timer.cancel()
        _active.deadline = self._previous
        with self._lock:
            self._sockets.clear()

    def watch(self, sock) -> None:
        with self._lock:
            if self.expired:
                _shut_down(sock)
            else:
                self._sockets.append(sock)

    def _expire(self):
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut_down(sock)


def _shut_down(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _watch(sock) -> None:
    deadline = getattr(_active, "deadline", None)
    if deadline is not None and sock is not None:
        deadline.watch(sock)


class _Watched:
    """Registers the connection's socket with the thread's deadline (new and reused connections alike)."""

    def connect(self):
        super().connect()
        _watch(self.sock)

    def request(self, *args, **kwargs):
        _watch(self.sock)  # None on a new connection: connect() registers it
        return super().request(*args, **kwargs)


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _DeadlineAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


def mount_deadline_adapters(session: requests.Session, pool_size: int = 10) -> requests.Session:
    """Make every http(s) exchange of `session` subject to the Deadline active in its thread; keep up to
    `pool_size` connections to a host, for requests made side by side."""
    session.mount("http://", _DeadlineAdapter(pool_maxsize=pool_size))
    session.mount("https://", _DeadlineAdapter(pool_maxsize=pool_size))
    return session
