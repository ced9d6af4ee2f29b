"""Small servers of our own on 127.0.0.1, for server behaviours the stand-in does not model.

`raw_server` writes bytes straight to the socket (a status line that drips,
chunked trailers without end, a gzip header that never ends), `http_server`
runs a BaseHTTPRequestHandler class. Both are bounded: every answer stops by
itself after `run_for` seconds or when the client goes, and the server stops
when the block ends.
"""

import gzip
import json
import re
import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from utils.gho_samples import generate_rows

BODY = b'{"@odata.count": 1, "value": [{"Id": 1}]}'


@contextmanager
def raw_server(write, run_for=10.0):
    """Answer each connection with `write(connection, until)`; yield the API base URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stopping = threading.Event()

    def answer(connection):
        with connection:
            connection.settimeout(run_for)
            try:
                connection.recv(65536)
                write(connection, min(time.monotonic() + run_for, time.monotonic() + 60))
            except OSError:
                pass  # the client went away: what these servers wait for

    def serve():
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except socket.timeout:
                continue
            threading.Thread(target=answer, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api"
    finally:
        stopping.set()
        thread.join()
        listener.close()


def _for_a_while(connection, until, piece, interval):
    while time.monotonic() < until:
        connection.sendall(piece)
        if interval:
            time.sleep(interval)


def header_drip(connection, until):
    """The status line, then a header one byte every 50 ms."""
    connection.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    _for_a_while(connection, until, b"a", 0.05)


def endless_trailers(connection, until):
    """A complete chunked body, then trailer lines without end (http.client reads them all)."""
    connection.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % len(BODY)
        + BODY
        + b"\r\n0\r\n"
    )
    _for_a_while(connection, until, b"X-Trailer: " + b"y" * 1000 + b"\r\n", 0)


def endless_gzip_name(connection, until):
    """A gzip header whose file name never ends: bytes arrive, nothing inflates."""
    connection.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n\r\n"
        + gzip.compress(BODY)[:3]
        + b"\x08"  # FNAME: a zero-terminated file name follows the header
        + b"\x00\x00\x00\x00\x00\xff"
    )
    _for_a_while(connection, until, b"n" * 65536, 0)


@contextmanager
def http_server(handler):
    """Serve `handler` (a BaseHTTPRequestHandler class); yield the API base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()


class _JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def do_GET(self):
        split = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(split.query).items()}
        body = json.dumps(self.answer(split, params)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class EmptyEndedChains(_JsonHandler):
    """Pages 400 rows a piece and ends every nextLink chain with an empty piece, as some OData servers do."""

    rows = generate_rows("WHOSIS_000001", 1500)

    def answer(self, split, params):
        bound = re.search(r"Id gt (\d+)$", params.get("$filter", ""))
        after = [r for r in self.rows if r["Id"] > (int(bound.group(1)) if bound else 0)]
        offset = int(params.get("$skiptoken", 0))
        piece = after[: int(params["$top"])][offset : offset + 400]
        answer = {"@odata.count": len(after), "value": piece}
        if piece:
            answer["@odata.nextLink"] = f"{split.path}?{urlencode(dict(params, **{'$skiptoken': offset + 400}))}"
        return answer


class EmptyLinksWithoutEnd(_JsonHandler):
    """One row, then empty pages, each with a new nextLink, for ever."""

    def answer(self, split, params):
        step = int(params.get("step", 0))
        rows = [] if step else [{"Id": 1}]
        return {"@odata.count": 5, "value": rows, "@odata.nextLink": f"{split.path}?step={step + 1}"}


class RowsInACountOfNothing(_JsonHandler):
    """Counts no rows, yet sends three when asked for none ($top=0)."""

    def answer(self, split, params):
        rows = [{"Id": 1}, {"Id": 2}, {"Id": 3}] if params.get("$top") == "0" else []
        return {"@odata.count": 0, "value": rows}


class MiscountedCatalogue(_JsonHandler):
    """A catalogue that counts 10 indicators and sends one."""

    def answer(self, split, params):
        return {"@odata.count": 10, "value": [{"IndicatorCode": "ONLY", "IndicatorName": "One", "Language": "EN"}]}


class CatalogueLinkLoop(_JsonHandler):
    """A catalogue whose nextLinks go round two pages for ever, without a count."""

    def answer(self, split, params):
        page = int(params.get("page", 0))
        row = {"IndicatorCode": f"C{page}", "IndicatorName": "x", "Language": "EN"}
        return {"value": [row], "@odata.nextLink": f"{split.path}?page={(page + 1) % 2}"}
