#!/usr/bin/env python3
"""A stand-in for the WHO GHO OData API on 127.0.0.1, for offline runs and tests.

It serves the real samples from ../shared/gho_samples when present (otherwise
generated GHO-shaped rows) under /api/<INDICATOR>, /api/Indicator and
/api/DIMENSION/COUNTRY/DimensionValues, with $filter, $select, $orderby, $top,
$skip and $count=true (`"@odata.count": N` right after `@odata.context`: the
rows matching $filter, whatever $skip and $top), 404 for unknown indicators and
400 for bad queries, like GHO. By default it answers as GHO does: every row
asked for in one answer, no server paging.

Keyset paging is served fast: `$orderby=Id` with `$filter=Id gt N` or
`(<filter>) and Id gt N` is answered from the encoding of the query without the
bound, cut after the last Id <= N, so paging a million rows stays cheap.

Faults can be switched on to test retries and hostile answers; each fires on
`times` matching requests, after letting `after` through, on paths containing
`path` (all optional):
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

Modes change how indicator data (/api/<CODE>, not /api/Indicator or the
DIMENSION endpoint) is answered, until reset:
  cap=N               at most N rows an answer and never a nextLink ($top above N is ignored)
  ignore_skip=true    $skip is ignored
  ignore_keyset=true  a trailing `Id gt N` bound of $filter is ignored ($skip is honoured)
  no_count=true       $count is ignored
  max_page_size=N     server paging: N rows an answer and an @odata.nextLink to the rest
  cycle_links=true    (with max_page_size) the second piece's nextLink points back to the first
  next_link_base=URL  nextLinks are built on this base (e.g. http://127.0.0.1:PORT/api)
  link_style=relative nextLinks are relative references (`WHOSIS_000001?%24skip=...`)

Control it in-process (`StubServer`: add_fault, set_mode, reset_mode,
after_requests, delete_rows, insert_rows, ...) or, for a stand-in run as its
own process, over HTTP:
  POST /_control/faults          a fault object or a list: {"kind": "drip", "seconds": 0.5, "times": 1}
  POST /_control/mode            mode settings; only the keys given change: {"cap": 1000}
  GET  /_control/mode            the mode now
  POST /_control/after_requests  {"n": 2, "action": "delete_rows", "code": CODE, "ids": [1, 2]} or
                                 {"n": 2, "action": "insert_rows", "code": CODE, "rows": [{...}]}:
                                 change the data right after the n-th next data request
  POST /_control/indicators/CODE a JSON list of rows to serve for CODE
  POST /_control/reset           clears faults, the request log and pending actions; resets the mode
  GET  /_control/requests        the request log

Run the pipeline against it:
    python3 utils/gho_stub.py --port 8765 &
    GHO_API_BASE_URL=http://127.0.0.1:8765/api python3 scripts/start_scheduler.py --once
"""

import argparse
import json
import re
import socket
import sys
import threading
import time
import traceback
import zlib
from bisect import bisect_right
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.gho_samples import FIELDS, SampleLibrary, generate_rows  # noqa: E402
from utils.odata import ODataError, tokenize, apply_query  # noqa: E402

API_PREFIX = "/api"
META_RESOURCES = ("Indicator", "DIMENSION/COUNTRY/DimensionValues")  # not indicator data: no modes
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
DEFAULT_MODE = {
    "cap": None,
    "ignore_skip": False,
    "ignore_keyset": False,
    "no_count": False,
    "max_page_size": None,
    "cycle_links": False,
    "next_link_base": None,
    "link_style": "absolute",
}
HOOK_ACTIONS = ("delete_rows", "insert_rows")
HTML_ERROR_PAGE = b"<html><head><title>Service Unavailable</title></head><body><h1>Upstream error</h1></body></html>"
# `Id gt N` or `(<user filter>) and Id gt N`, exactly: the keyset pages the client asks for.
_KEYSET_FILTER = re.compile(r"\((?P<user>.*)\) and Id gt (?P<bound>-?\d+)|Id gt (?P<only>-?\d+)", re.DOTALL)
# The endless body: 128-byte rows, 512 of them a 64 KiB write.
_ENDLESS_ROW = b'{"Id": 1, "Comments": "' + b"x" * 101 + b'"}, '
_ENDLESS_BLOCK = _ENDLESS_ROW * 512
_VALUE_PREFIX = b'{"value": ['
_gzip_bombs = {}  # inflated size -> compressed body
_gzip_lock = threading.Lock()


def encode_json(obj) -> bytes:
    """UTF-8 JSON as GHO sends it; text that UTF-8 cannot hold (a lone surrogate) goes out as a \\u escape."""
    text = json.dumps(obj, ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj).encode("ascii")


def split_keyset(text):
    """(user filter or None, N) when `text` is `Id gt N` or `(<user filter>) and Id gt N`, else None.

    The parentheses must enclose the whole user filter (`(A) or (B) and Id gt 5` is not that shape).
    """
    match = _KEYSET_FILTER.fullmatch(text or "")
    if not match:
        return None
    if match.group("only") is not None:
        return None, int(match.group("only"))
    user = match.group("user")
    if not user.strip() or not _one_group(user):
        return None
    return user, int(match.group("bound"))


def _one_group(text) -> bool:
    """Whether `(text)` is one parenthesised group: text's own parentheses balance and never close it."""
    try:
        tokens = tokenize(text)
    except ODataError:
        return False
    depth = 0
    for kind, value in tokens:
        if kind == "punct" and value in "()":
            depth += 1 if value == "(" else -1
            if depth < 0:
                return False
    return depth == 0


def _ordered_by_id(orderby) -> bool:
    return (orderby or "").strip() in ("Id", "Id asc")


def _count_asked(params, ignored=False) -> bool:
    """Whether $count=true was asked (any case); another value than true/false is a bad query."""
    value = params.get("$count")
    if value is None or ignored:
        return False
    if value.lower() not in ("true", "false"):
        raise ODataError(f"$count must be true or false, not {value!r}")
    return value.lower() == "true"


def _non_negative(params, name):
    if params.get(name) in (None, ""):
        return None
    try:
        value = int(params[name])
    except ValueError:
        value = -1
    if value < 0:
        raise ODataError(f"{name} must be a non-negative integer")
    return value


def _numeric(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _has_id(ids, row) -> bool:
    try:
        return row.get("Id") in ids
    except TypeError:  # an unhashable Id
        return False


def validate_mode(settings) -> dict:
    """Checked mode settings (raises ValueError naming the bad one)."""
    clean = {}
    for key, value in settings.items():
        if key not in DEFAULT_MODE:
            raise ValueError(f"unknown mode setting {key!r}; one of {', '.join(DEFAULT_MODE)}")
        if key in ("cap", "max_page_size"):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{key} must be a positive integer or null, not {value!r}")
        elif key == "next_link_base":
            if value is not None and not (isinstance(value, str) and value.startswith(("http://", "https://"))):
                raise ValueError(f"next_link_base must be an http(s) URL or null, not {value!r}")
            value = value.rstrip("/") if value else None
        elif key == "link_style":
            if value not in ("absolute", "relative"):
                raise ValueError(f"link_style must be 'absolute' or 'relative', not {value!r}")
        elif not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, not {value!r}")
        clean[key] = value
    return clean


def gzip_bomb_body(inflated: int) -> bytes:
    """A gzip stream of `{"value": [` and spaces, `inflated` bytes in all; built in 1 MiB blocks, once per size."""
    inflated = max(int(inflated), len(_VALUE_PREFIX))
    with _gzip_lock:
        body = _gzip_bombs.get(inflated)
        if body is None:
            compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
            pieces = [compressor.compress(_VALUE_PREFIX)]
            block = b" " * (1 << 20)
            left = inflated - len(_VALUE_PREFIX)
            while left > 0:
                pieces.append(compressor.compress(block[: min(left, len(block))]))
                left -= len(block)
            pieces.append(compressor.flush())
            body = _gzip_bombs[inflated] = b"".join(pieces)
    return body


class StubState:
    """Indicators, faults, modes and the request log, shared by the handler threads."""

    def __init__(self, samples_dir=None, generated=None, use_samples=True, vary_every=0):
        self.lock = threading.Lock()
        self.encoded = {}  # (code, $filter, $orderby) -> (rows object, rows encoded as JSON once, their Ids or None)
        self.library = SampleLibrary(samples_dir) if use_samples else SampleLibrary(Path("/nonexistent"))
        self.indicators = {}  # code -> rows (overrides and generated data)
        self.faults = []
        self.requests = []
        self.mode = dict(DEFAULT_MODE)
        self.startup_mode = dict(DEFAULT_MODE)  # what reset_mode returns to (the command line's settings)
        self.chain_parents = {}  # (code, query of a second piece) -> the first piece's URL (cycle_links)
        self.data_requests = 0  # /api/<CODE> requests so far
        self.hooks = []  # {"at": data request number, "run": callable}
        self.hook_lock = threading.Lock()  # one action at a time, and requests wait for a due one
        self.hook_errors = []
        self.stopping = threading.Event()
        for code, count in (generated or {}).items():
            self.indicators[code] = generate_rows(code, count, vary_every=vary_every)
        if not self.library.available and not self.indicators:
            # No samples: serve generated versions of the shipped datasets.
            for code in ("WHOSIS_000001", "WHOSIS_000015"):
                self.indicators[code] = generate_rows(code, 12936)

    def rows(self, code):
        with self.lock:
            if code in self.indicators:
                return self.indicators[code]
        if code in self.library.sources:
            rows = self.library.rows(code)
            with self.lock:
                return self.indicators.setdefault(code, rows)
        return None

    def codes(self):
        with self.lock:
            return sorted(set(self.indicators) | set(self.library.sources))

    def replace_rows(self, code, rows):
        with self.lock:
            self.indicators[code] = rows
            self.encoded = {query: cached for query, cached in self.encoded.items() if query[0] != code}

    def delete_rows(self, code, ids) -> int:
        """Stop serving the rows of `code` with these Ids; return how many went."""
        rows = self.rows(code)
        if rows is None:
            raise KeyError(f"no indicator {code!r}")
        ids = set(ids)
        kept = [row for row in rows if not _has_id(ids, row)]
        self.replace_rows(code, kept)
        return len(rows) - len(kept)

    def insert_rows(self, code, rows) -> int:
        """Serve these rows of `code` too (a new indicator if there is none); return how many."""
        rows = list(rows)
        self.replace_rows(code, list(self.rows(code) or []) + rows)
        return len(rows)

    def encoded_query(self, code, rows, filter_text, orderby):
        """(rows matching $filter in $orderby order, each encoded as JSON once; their Ids when ordered by Id and
        all numbers, else None). Raises ODataError."""
        query = (code, filter_text or None, orderby or None)
        with self.lock:
            cached = self.encoded.get(query)
        if cached is None or cached[0] is not rows:
            fields = set(FIELDS).union(*(row.keys() for row in rows[:1]))
            base = {name: text for name, text in (("$filter", filter_text), ("$orderby", orderby)) if text}
            matched = apply_query(rows, base, fields)
            ids = None
            if _ordered_by_id(orderby):
                ids = [row.get("Id") for row in matched]
                if not all(_numeric(value) for value in ids):
                    ids = None
            cached = (rows, [encode_json(row) for row in matched], ids)
            with self.lock:
                self.encoded = {query: cached}  # one query's encoding at a time
        return cached[1], cached[2]

    def count_matching(self, code, rows, filter_text, keyset):
        """How many rows match $filter, from an encoding made already when there is one, else without encoding
        (a `$top=0` count request must not evict the keyset pages' encoding). Raises ODataError."""
        with self.lock:
            entries = list(self.encoded.items())
        for (cached_code, cached_filter, _), (cached_rows, encoded, ids) in entries:
            if cached_code != code or cached_rows is not rows:
                continue
            if cached_filter == (filter_text or None):
                return len(encoded)
            if keyset and ids is not None and cached_filter == keyset[0]:
                return len(ids) - bisect_right(ids, keyset[1])
        if not filter_text:
            return len(rows)
        fields = set(FIELDS).union(*(row.keys() for row in rows[:1]))
        return len(apply_query(rows, {"$filter": filter_text}, fields))

    def encoded_rows(self, code, rows, params) -> list:
        """The rows matching $filter/$orderby, each encoded as JSON once (raises ODataError)."""
        return self.encoded_query(code, rows, params.get("$filter"), params.get("$orderby"))[0]

    def take_fault(self, path):
        with self.lock:
            for fault in self.faults:
                if fault.get("path") and fault["path"] not in path:
                    continue
                if fault.get("after", 0) > 0:
                    # Let this many matching requests through first.
                    fault["after"] -= 1
                    return None
                fault["times"] -= 1
                if fault["times"] <= 0:
                    self.faults.remove(fault)
                return dict(fault)
        return None

    # --- modes -------------------------------------------------------------------
    @property
    def max_page_size(self):
        return self.mode["max_page_size"]

    @max_page_size.setter
    def max_page_size(self, size):
        self.set_mode(max_page_size=size or None)

    def set_mode(self, **settings):
        clean = validate_mode(settings)
        with self.lock:
            self.mode.update(clean)
            self.chain_parents.clear()
            return dict(self.mode)

    def reset_mode(self):
        with self.lock:
            self.mode = dict(self.startup_mode)
            self.chain_parents.clear()

    def mode_now(self) -> dict:
        with self.lock:
            return dict(self.mode)

    def reset(self):
        """Faults, the request log, pending actions and the mode, as at start-up (the data stays)."""
        with self.lock:
            self.faults.clear()
            self.requests.clear()
            self.hooks.clear()
        self.reset_mode()

    # --- upstream changes while paging ------------------------------------------
    def next_data_request(self) -> int:
        with self.lock:
            self.data_requests += 1
            return self.data_requests

    def add_hook(self, n, run):
        """Call `run()` once, right after the n-th data request from now has been answered (now if n <= 0)."""
        with self.lock:
            self.hooks.append({"at": self.data_requests + int(n), "run": run})
            now = self.data_requests
        if n <= 0:
            self.run_hooks(now)

    def run_hooks(self, answered):
        """Run the actions due once `answered` data requests have been answered; a later request that arrives
        while one runs waits for it, so it sees the change."""
        with self.hook_lock:
            with self.lock:
                due = [hook for hook in self.hooks if hook["at"] <= answered]
                if not due:
                    return
                self.hooks = [hook for hook in self.hooks if hook["at"] > answered]
            for hook in due:
                try:
                    hook["run"]()
                except Exception as exc:  # the stand-in keeps serving; the error is kept for the test to see
                    self.hook_errors.append(f"{type(exc).__name__}: {exc}")
                    traceback.print_exc()


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

    # --- control -------------------------------------------------------------
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

    def add_fault(self, kind, times=1, path=None, **options):
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        with self.state.lock:
            self.state.faults.append({"kind": kind, "times": times, "path": path, **options})

    def clear_faults(self):
        with self.state.lock:
            self.state.faults.clear()

    def prepare(self, code):
        """Encode an indicator's rows now (for `$orderby=Id`, what extract asks), not on the first request."""
        self.state.encoded_rows(code, self.state.rows(code), {"$orderby": "Id"})

    def set_max_page_size(self, size):
        self.state.max_page_size = size

    def set_mode(self, **settings) -> dict:
        """Change how indicator data is answered (see the module docstring); only the settings given change."""
        return self.state.set_mode(**settings)

    def reset_mode(self):
        self.state.reset_mode()

    @property
    def mode(self) -> dict:
        return self.state.mode_now()

    def after_requests(self, n, action):
        """Run `action(stub)` once, right after the n-th /api/<CODE> data request from now has been answered."""
        self.state.add_hook(n, lambda: action(self))

    def reset(self):
        """As POST /_control/reset: no faults, an empty request log, no pending actions, the start-up mode."""
        self.state.reset()

    @property
    def requests(self):
        with self.state.lock:
            return list(self.state.requests)

    def clear_requests(self):
        with self.state.lock:
            self.state.requests.clear()


class StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "gho-stub/1.0"
    state: StubState = None

    def log_message(self, format, *args):  # quiet: tests read the request log instead
        pass

    # --- plumbing --------------------------------------------------------------
    def _send(self, status, body: bytes, content_type="application/json; charset=utf-8", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status, obj, headers=None):
        self._send(status, encode_json(obj), headers=headers)

    def _odata_error(self, status, message):
        self._send_json(status, {"error": {"code": "", "message": message}})

    def _record(self, status, fault=None):
        split = urlsplit(self.path)
        entry = {
            "method": self.command,
            "path": split.path,
            "query": split.query,
            "status": status,
            "at": time.monotonic(),
        }
        if fault:
            entry["fault"] = fault["kind"]
        with self.state.lock:
            self.state.requests.append(entry)
        return entry

    def _origin(self):
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def _context(self, context):
        return f"{self._origin()}{API_PREFIX}/$metadata#{context}"

    # --- faults ----------------------------------------------------------------
    def _apply_fault(self, fault, answer, entry, resource):
        """Answer as the fault says; False when the normal answer should follow (slow)."""
        kind = fault["kind"]

        def body_factory():
            return answer()["body"]

        if kind == "slow":
            time.sleep(float(fault.get("seconds", 5)))
            return False  # then answer normally
        if kind == "stall":
            # Half the body, a pause, then the rest: a download in progress.
            body = body_factory()
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            time.sleep(float(fault.get("seconds", 5)))
            try:
                self.wfile.write(body[len(body) // 2 :])
            except OSError:
                pass  # the client went away mid-download
            return True
        try:
            if kind == "drip":
                self._drip(fault, body_factory(), entry)
            elif kind == "endless":
                self._endless(fault, entry)
            elif kind == "gzip_bomb":
                body = gzip_bomb_body(fault.get("inflated", 512 << 20))
                self._send(200, body, content_type="application/json", headers={"Content-Encoding": "gzip"})
            elif kind == "redirect":
                location = fault.get("location") or f"{self._origin()}{self.path}"
                self._send(
                    int(fault.get("status", 302)), b"", content_type="text/plain", headers={"Location": location}
                )
            elif kind == "error_body":
                body = fault.get("body", "injected error")
                body = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
                self._send(int(fault.get("status", 500)), body, content_type="text/plain")
            elif kind == "empty_value":
                count = fault["count"] if "count" in fault else answer()["count"]
                payload = {"@odata.context": self._context(resource)}
                if count is not None:
                    payload["@odata.count"] = int(count)
                payload["value"] = []
                self._send_json(200, payload)
            elif kind == "status":
                status = int(fault.get("status", 503))
                headers = {"Retry-After": str(fault["retry_after"])} if fault.get("retry_after") is not None else None
                self._send(status, b'{"error": {"message": "injected fault"}}', headers=headers)
            elif kind == "empty":
                self._send(200, b"")
            elif kind == "html":
                self._send(200, HTML_ERROR_PAGE, content_type="text/html")
            elif kind == "truncate":
                body = body_factory()
                self._send(200, body[: max(1, len(body) // 2)])
            elif kind == "reset":
                body = body_factory()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: max(1, len(body) // 2)])
                self.wfile.flush()
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.close()
        except OSError:
            self.close_connection = True  # the client went away
        return True

    def _drip(self, fault, body, entry):
        """The real headers, then the body a byte every `seconds`, for at most `limit_s` in all."""
        seconds = float(fault.get("seconds", 1.0))
        limit = float(fault.get("limit_s", 120))
        started = time.monotonic()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        sent, ended = 0, "complete"
        for index in range(len(body)):
            try:
                self.wfile.write(body[index : index + 1])
            except OSError:
                ended = "client gone"
                break
            sent += 1
            if sent == len(body):
                break
            if time.monotonic() - started + seconds > limit:
                ended = "limit"
                break
            if self.state.stopping.wait(seconds):
                ended = "stopped"
                break
        with self.state.lock:  # the request log may be read meanwhile
            entry.update(sent=sent, ended=ended)
        self.close_connection = True

    def _endless(self, fault, entry):
        """`{"value": [` then rows for ever, in 64 KiB writes, until a write fails or limit_bytes are sent."""
        limit = int(fault.get("limit_bytes", 2 << 30))
        self.connection.settimeout(float(fault.get("write_timeout_s", 30)))  # a client that stops reading
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.end_headers()
        sent, ended = 0, "limit"
        while sent < limit:
            piece = (_VALUE_PREFIX if sent == 0 else _ENDLESS_BLOCK)[: limit - sent]
            try:
                self.wfile.write(piece)
            except OSError:
                ended = "client gone"
                break
            sent += len(piece)
            if self.state.stopping.is_set():
                ended = "stopped"
                break
        with self.state.lock:  # the request log may be read meanwhile
            entry.update(sent=sent, ended=ended)
        self.close_connection = True

    # --- API -------------------------------------------------------------------
    def do_GET(self):
        split = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        if split.path.startswith("/_control/"):
            return self._control_get(split.path)
        if not split.path.startswith(API_PREFIX + "/"):
            self._record(404)
            return self._odata_error(404, "Not found")
        resource = split.path[len(API_PREFIX) + 1 :].rstrip("/")
        if resource in META_RESOURCES:
            return self._answer(resource, params, split)
        number = self.state.next_data_request()
        self.state.run_hooks(number - 1)  # an action due after the previous request has run
        try:
            self._answer(resource, params, split)
        finally:
            self.state.run_hooks(number)

    def _answer(self, resource, params, split):
        fault = self.state.take_fault(split.path)
        holder = {}

        def answer():
            if not holder:
                holder["status"], holder["body"], holder["count"] = self._respond(resource, params, split)
            return holder

        if fault:
            kind = fault["kind"]
            status = int(fault.get("status", FAULT_STATUS[kind])) if kind in FAULT_STATUS else 200
            entry = self._record(status, fault)
            if self._apply_fault(fault, answer, entry, resource):
                return
        answer()
        if not fault:
            self._record(holder["status"])
        self._send(holder["status"], holder["body"])

    def _respond(self, resource, params, split):
        """(status, body, @odata.count or None)."""
        if resource not in META_RESOURCES:
            rows = self.state.rows(resource)
            if rows is not None:
                return self._data(resource, rows, params, split)
        status, payload = self._resolve(resource, params, split)
        return status, encode_json(payload), payload.get("@odata.count")

    def _invalid(self, exc):
        message = f"The query specified in the URI is not valid. {exc}"
        return encode_json({"error": {"code": "", "message": message}})

    def _data(self, resource, rows, raw, split):
        """An indicator's data as the mode says: (status, body, @odata.count or None). Large indicators are served
        from rows encoded once per query, so the stand-in keeps up with the pipeline when it serves millions of
        rows (the benchmark); keyset pages (`Id gt N`) share the encoding of the query without the bound."""
        mode = self.state.mode_now()
        params = dict(raw)
        keyset = split_keyset(params.get("$filter"))
        if keyset and mode["ignore_keyset"]:
            if keyset[0] is None:
                del params["$filter"]
            else:
                params["$filter"] = keyset[0]
            keyset = None
        if mode["ignore_skip"]:
            params.pop("$skip", None)
        try:
            counted = _count_asked(params, mode["no_count"])
            skip = _non_negative(params, "$skip") or 0
            top = _non_negative(params, "$top")
            if top == 0 and not params.get("$select"):  # a count request: no rows to encode
                fields = set(FIELDS).union(*(row.keys() for row in rows[:1]))
                apply_query([], {"$orderby": params.get("$orderby")}, fields)  # a bad $orderby is still a 400
                total = self.state.count_matching(resource, rows, params.get("$filter"), keyset)
                items, start, encoded = [], 0, True
            else:
                items, start, encoded = self._matched(resource, rows, params, keyset)
                total = len(items) - start
        except ODataError as exc:
            return 400, self._invalid(exc), None
        count = total if counted else None
        begin = start + skip
        end = len(items) if top is None else min(len(items), begin + top)
        link = None
        page = mode["max_page_size"]
        if mode["cap"] is not None:
            end = min(end, begin + mode["cap"])  # a hard cap: never more, never a link
        elif page:
            rest = None
            if end - begin > page:
                # Server-driven paging, as OData services do: a page and a link to the rest.
                end = begin + page
                rest = dict(raw, **{"$skip": str(skip + page)})
                if top is not None:
                    rest["$top"] = str(top - page)
                link = self._link(resource, split, urlencode(rest), mode)
            if mode["cycle_links"]:
                link = self._cycle(resource, split, raw, rest, link, mode)
        chosen = items[begin:end]
        if not encoded:
            chosen = [encode_json(row) for row in chosen]
        head = {"@odata.context": self._context(resource)}
        if count is not None:
            head["@odata.count"] = count
        body = encode_json(head)[:-1] + b', "value": [' + b", ".join(chosen) + b"]"
        if link is not None:
            body += b', "@odata.nextLink": ' + encode_json(link)
        return 200, body + b"}", count

    def _matched(self, resource, rows, params, keyset):
        """(the rows matching $filter in $orderby order, the index of the first to serve, whether they are
        encoded JSON already). Raises ODataError."""
        if params.get("$select"):
            fields = set(FIELDS).union(*(row.keys() for row in rows[:1]))
            base = {name: params[name] for name in ("$filter", "$orderby", "$select") if params.get(name)}
            return apply_query(rows, base, fields), 0, False
        orderby = params.get("$orderby")
        if keyset and _ordered_by_id(orderby):
            user, bound = keyset
            try:
                encoded, ids = self.state.encoded_query(resource, rows, user, orderby)
            except ODataError:
                ids = None  # the whole filter answers with its own error
            if ids is not None:
                return encoded, bisect_right(ids, bound), True
        return self.state.encoded_query(resource, rows, params.get("$filter"), orderby)[0], 0, True

    def _link(self, resource, split, query, mode):
        if mode["link_style"] == "relative":
            return f"{split.path.rstrip('/').rsplit('/', 1)[-1]}?{query}"
        if mode["next_link_base"]:
            return f"{mode['next_link_base']}/{resource}?{query}"
        return f"{self._origin()}{split.path}?{query}"

    def _cycle(self, resource, split, raw, rest, link, mode):
        """cycle_links: the second piece of a chain links back to the first (A -> B -> A ...)."""
        with self.state.lock:
            parent = self.state.chain_parents.get((resource, tuple(sorted(raw.items()))))
            if parent is None and rest is not None:
                self.state.chain_parents[(resource, tuple(sorted(rest.items())))] = self._link(
                    resource, split, split.query, mode
                )
        return parent if parent is not None else link

    def _resolve(self, resource, params, split):
        if resource == "Indicator":
            catalogue = self.state.library.catalogue() or [
                {"IndicatorCode": code, "IndicatorName": code, "Language": "EN"} for code in self.state.codes()
            ]
            return self._query(catalogue, params, ("IndicatorCode", "IndicatorName", "Language"), resource)
        if resource == "DIMENSION/COUNTRY/DimensionValues":
            rows = [
                {
                    "Code": "AFG",
                    "Title": "Afghanistan",
                    "Dimension": "COUNTRY",
                    "ParentDimension": "REGION",
                    "ParentCode": "EMR",
                    "ParentTitle": "Eastern Mediterranean",
                }
            ]
            return self._query(rows, params, tuple(rows[0]), "Collection(Default.DIMENSION_VALUE)")
        return 404, {"error": {"code": "", "message": f"No HTTP resource was found that matches '{resource}'."}}

    def _query(self, rows, params, fields, context):
        try:
            counted = _count_asked(params)
            value = apply_query(rows, params, fields)
            count = len(apply_query(rows, {"$filter": params.get("$filter")}, fields)) if counted else None
        except ODataError as exc:
            return 400, {"error": {"code": "", "message": f"The query specified in the URI is not valid. {exc}"}}
        payload = {"@odata.context": self._context(context)}
        if counted:
            payload["@odata.count"] = count
        payload["value"] = value
        return 200, payload

    # --- control over HTTP (for a stand-in started as a separate process) ---------
    def _control_get(self, path):
        if path == "/_control/requests":
            with self.state.lock:
                return self._send_json(200, list(self.state.requests))
        if path == "/_control/mode":
            return self._send_json(200, self.state.mode_now())
        return self._odata_error(404, "unknown control endpoint")

    def do_POST(self):
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            return self._odata_error(400, "body is not JSON")
        state = self.state
        if split.path == "/_control/faults":
            faults = body if isinstance(body, list) else [body]
            for fault in faults:
                if not isinstance(fault, dict) or fault.get("kind") not in FAULT_KINDS:
                    return self._odata_error(400, f"a fault needs kind, one of {', '.join(FAULT_KINDS)}")
            with state.lock:
                state.faults.extend({"times": 1, **f} for f in faults)
            return self._send_json(200, {"faults": len(state.faults)})
        if split.path == "/_control/mode":
            if not isinstance(body, dict):
                return self._odata_error(400, "body must be a JSON object of mode settings")
            try:
                mode = state.set_mode(**body)
            except ValueError as exc:
                return self._odata_error(400, str(exc))
            return self._send_json(200, mode)
        if split.path == "/_control/after_requests":
            try:
                run = self._hook_action(body)
            except ValueError as exc:
                return self._odata_error(400, str(exc))
            state.add_hook(body["n"], run)
            return self._send_json(200, {"ok": True})
        if split.path == "/_control/reset":
            state.reset()
            return self._send_json(200, {"ok": True})
        if split.path.startswith("/_control/indicators/"):
            code = split.path.rsplit("/", 1)[-1]
            if not isinstance(body, list):
                return self._odata_error(400, "body must be a JSON list of rows")
            state.replace_rows(code, body)
            return self._send_json(200, {"indicator": code, "rows": len(body)})
        return self._odata_error(404, "unknown control endpoint")

    def _hook_action(self, body):
        """The action of a POST /_control/after_requests body (raises ValueError)."""
        if not isinstance(body, dict) or body.get("action") not in HOOK_ACTIONS:
            raise ValueError(f"body needs action, one of {', '.join(HOOK_ACTIONS)}")
        n, code = body.get("n"), body.get("code")
        if isinstance(n, bool) or not isinstance(n, int) or not isinstance(code, str):
            raise ValueError("body needs n (an integer) and code (an indicator code)")
        if body["action"] == "delete_rows":
            ids = body.get("ids")
            if not isinstance(ids, list):
                raise ValueError("delete_rows needs ids, a list")
            return lambda: self.state.delete_rows(code, ids)
        rows = body.get("rows")
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise ValueError("insert_rows needs rows, a list of objects")
        return lambda: self.state.insert_rows(code, rows)


def _parse_generate(values):
    generated = {}
    for text in values or []:
        code, _, count = text.partition("=")
        if not code or not count.isdigit():
            raise argparse.ArgumentTypeError(f"--generate wants CODE=ROWS, got {text!r}")
        generated[code] = int(count)
    return generated


EPILOG = """\
control endpoints (for a stand-in run as its own process):
  POST /_control/faults          {"kind": "status", "status": 503, "times": 2, "after": 0, "path": null}
                                 (or a list of faults)
  POST /_control/mode            {"cap": 1000, "no_count": true}: only the settings given change
  GET  /_control/mode            the mode now
  POST /_control/after_requests  {"n": 2, "action": "delete_rows", "code": "WHOSIS_000001", "ids": [1, 2]}
                                 {"n": 2, "action": "insert_rows", "code": "WHOSIS_000001", "rows": [...]}
                                 change the data right after the n-th next /api/<CODE> request
  POST /_control/indicators/CODE [rows]: serve these rows for CODE
  POST /_control/reset           clear faults, the request log and pending actions; reset the mode
  GET  /_control/requests        the request log

fault kinds and their options (every fault also takes times, after and path):
  status       status (503), retry_after     reset        connection reset mid-body
  truncate     half the body                 empty        an empty 200
  html         an HTML page with status 200  slow         seconds (5), then the answer
  stall        seconds (5) pause mid-body
  drip         seconds (1.0), limit_s (120): the body one byte every `seconds`
  endless      limit_bytes (2 GiB), write_timeout_s (30): rows without end, no Content-Length
  gzip_bomb    inflated (512 MiB): a small gzip body that inflates to `inflated` bytes
  redirect     status (302), location (default: the same URL, a loop)
  error_body   status (500), body (text): a text/plain error body
  empty_value  count (default: the real @odata.count if $count=true; 0; null: none): "value": []

mode settings (for /api/<CODE> data only; default: none, as GHO):
  cap (rows)           at most this many rows an answer, never a nextLink
  ignore_skip (bool)   $skip is ignored
  ignore_keyset (bool) a trailing `Id gt N` bound of $filter is ignored
  no_count (bool)      $count is ignored
  max_page_size (rows) server paging with @odata.nextLink
  cycle_links (bool)   with max_page_size: the second piece links back to the first
  next_link_base (URL) nextLinks on another base, e.g. http://127.0.0.1:9999/api
  link_style           "absolute" (default) or "relative" nextLinks
"""


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Serve a stand-in for the WHO GHO OData API on this machine.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    parser.add_argument("--samples", type=Path, default=None, help="sample folder (default ../shared/gho_samples)")
    parser.add_argument("--no-samples", action="store_true", help="serve generated data only")
    parser.add_argument("--generate", action="append", metavar="CODE=ROWS", help="serve a generated indicator")
    parser.add_argument("--max-page-size", type=int, default=None, help="page large answers with @odata.nextLink")
    parser.add_argument(
        "--mode", default=None, metavar="JSON", help="start in this mode, e.g. '{\"cap\": 1000}' (kept by reset)"
    )
    parser.add_argument(
        "--vary-every", type=int, default=0, metavar="K", help="revise every K-th generated row's value (0: none)"
    )
    args = parser.parse_args(argv)
    try:
        generated = _parse_generate(args.generate)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    try:
        mode = validate_mode(json.loads(args.mode)) if args.mode else {}
    except (ValueError, TypeError, AttributeError) as exc:
        parser.error(f"--mode wants a JSON object of mode settings: {exc}")
    try:
        stub = StubServer(
            args.host, args.port, args.samples, generated, use_samples=not args.no_samples, vary_every=args.vary_every
        )
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    stub.set_max_page_size(args.max_page_size)
    stub.set_mode(**mode)
    stub.state.startup_mode = stub.mode
    for code in generated:
        stub.prepare(code)
    source = "samples in " + str(stub.state.library.directory) if stub.state.library.available else "generated data"
    print(f"GHO stand-in serving {len(stub.state.codes())} indicators ({source}) at {stub.base_url}", flush=True)
    try:
        stub.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stub.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
