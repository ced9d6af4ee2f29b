#!/usr/bin/env python3
"""A stand-in for the WHO GHO OData API on 127.0.0.1, for offline runs and tests.

It serves the real samples from ../shared/gho_samples when present (otherwise
generated GHO-shaped rows) under /api/<INDICATOR>, /api/Indicator and
/api/DIMENSION/COUNTRY/DimensionValues, with $filter, $select, $orderby, $top
and $skip, 404 for unknown indicators and 400 for bad queries, like GHO.

Faults can be switched on to test retries: HTTP status codes (with
Retry-After), a connection reset mid-body, a truncated body, an empty 200, an
HTML error page with status 200, slow answers, and a body that stalls half-way. Control it in-process
(`StubServer`) or over HTTP under /_control (see `--help`).

Run the pipeline against it:
    python3 utils/gho_stub.py --port 8765 &
    GHO_API_BASE_URL=http://127.0.0.1:8765/api python3 scripts/start_scheduler.py --once
"""

import argparse
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.gho_samples import FIELDS, SampleLibrary, generate_rows  # noqa: E402
from utils.odata import ODataError, apply_query  # noqa: E402

API_PREFIX = "/api"
FAULT_KINDS = ("status", "reset", "truncate", "empty", "html", "slow", "stall")
HTML_ERROR_PAGE = b"<html><head><title>Service Unavailable</title></head><body><h1>Upstream error</h1></body></html>"


def encode_json(obj) -> bytes:
    """UTF-8 JSON as GHO sends it; text that UTF-8 cannot hold (a lone surrogate) goes out as a \\u escape."""
    text = json.dumps(obj, ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj).encode("ascii")


class StubState:
    """Indicators, faults and the request log, shared by the handler threads."""

    def __init__(self, samples_dir=None, generated=None, use_samples=True, vary_every=0):
        self.lock = threading.Lock()
        self.encoded = {}  # (code, query) -> (rows object, rows encoded as JSON once)
        self.library = SampleLibrary(samples_dir) if use_samples else SampleLibrary(Path("/nonexistent"))
        self.indicators = {}  # code -> rows (overrides and generated data)
        self.faults = []
        self.requests = []
        self.max_page_size = None
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

    def encoded_rows(self, code, rows, params) -> list:
        """The rows matching $filter/$orderby, each encoded as JSON once (raises ODataError)."""
        query = (code, params.get("$filter"), params.get("$orderby"))
        with self.lock:
            cached = self.encoded.get(query)
        if cached is None or cached[0] is not rows:
            fields = set(FIELDS).union(*(row.keys() for row in rows[:1]))
            base = {k: v for k, v in params.items() if k in ("$filter", "$orderby")}
            cached = (rows, [encode_json(row) for row in apply_query(rows, base, fields)])
            with self.lock:
                self.encoded = {query: cached}  # one query's encoding at a time
        return cached[1]

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
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="gho-stub", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- control -------------------------------------------------------------
    def set_rows(self, code, rows):
        with self.state.lock:
            self.state.indicators[code] = list(rows)

    def use_download(self, code, download):
        """Serve another saved download of the same indicator (e.g. one with other Ids)."""
        self.set_rows(code, self.state.library.rows(code, download))

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

    # --- faults ----------------------------------------------------------------
    def _apply_fault(self, fault, body_factory):
        kind = fault["kind"]
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
        if kind == "status":
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
        return True

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
        fault = self.state.take_fault(split.path)
        body_holder = {}

        def body_factory():
            if "body" not in body_holder:
                body_holder["status"], body_holder["body"] = self._respond(resource, params, split)
            return body_holder["body"]

        if fault:
            self._record(200 if fault["kind"] != "status" else int(fault.get("status", 503)), fault)
            if self._apply_fault(fault, body_factory):
                return
        body_factory()
        if not fault:
            self._record(body_holder["status"])
        self._send(body_holder["status"], body_holder["body"])

    def _respond(self, resource, params, split):
        """(status, body). Large indicators are served from rows encoded once per query, so the
        stand-in keeps up with the pipeline when it serves millions of rows (the benchmark)."""
        rows = None if resource in ("Indicator", "DIMENSION/COUNTRY/DimensionValues") else self.state.rows(resource)
        if rows is None or params.get("$select") or self.state.max_page_size:
            status, payload = self._resolve(resource, params, split)
            return status, encode_json(payload)
        try:
            encoded = self.state.encoded_rows(resource, rows, params)
        except ODataError as exc:
            message = f"The query specified in the URI is not valid. {exc}"
            return 400, encode_json({"error": {"code": "", "message": message}})
        try:
            skip = int(params.get("$skip") or 0)
            top = int(params["$top"]) if params.get("$top") not in (None, "") else None
            if skip < 0 or (top is not None and top < 0):
                raise ValueError
        except ValueError:
            return 400, encode_json({"error": {"code": "", "message": "$skip and $top must be non-negative integers"}})
        selected = encoded[skip:] if top is None else encoded[skip : skip + top]
        host, port = self.server.server_address[:2]
        head = encode_json({"@odata.context": f"http://{host}:{port}{API_PREFIX}/$metadata#{resource}"})[:-1]
        return 200, head + b', "value": [' + b", ".join(selected) + b"]}"

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
        rows = self.state.rows(resource)
        if rows is None:
            return 404, {"error": {"code": "", "message": f"No HTTP resource was found that matches '{resource}'."}}
        fields = set(FIELDS).union(*(row.keys() for row in rows[:1]))
        status, payload = self._query(rows, params, fields, resource)
        page = self.state.max_page_size
        if status == 200 and page and len(payload["value"]) > page:
            # Server-driven paging, as OData services do: a page and a link to the rest.
            skip = int(params.get("$skip") or 0)
            rest = dict(params, **{"$skip": str(skip + page)})
            if params.get("$top"):
                rest["$top"] = str(int(params["$top"]) - page)
            payload["value"] = payload["value"][:page]
            host, port = self.server.server_address[:2]
            payload["@odata.nextLink"] = f"http://{host}:{port}{split.path}?{urlencode(rest)}"
        return status, payload

    def _query(self, rows, params, fields, context):
        try:
            value = apply_query(rows, params, fields)
        except ODataError as exc:
            return 400, {"error": {"code": "", "message": f"The query specified in the URI is not valid. {exc}"}}
        host, port = self.server.server_address[:2]
        return 200, {"@odata.context": f"http://{host}:{port}{API_PREFIX}/$metadata#{context}", "value": value}

    # --- control over HTTP (for a stand-in started as a separate process) ---------
    def _control_get(self, path):
        if path == "/_control/requests":
            with self.state.lock:
                return self._send_json(200, list(self.state.requests))
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
        if split.path == "/_control/reset":
            with state.lock:
                state.faults.clear()
                state.requests.clear()
            return self._send_json(200, {"ok": True})
        if split.path.startswith("/_control/indicators/"):
            code = split.path.rsplit("/", 1)[-1]
            if not isinstance(body, list):
                return self._odata_error(400, "body must be a JSON list of rows")
            with state.lock:
                state.indicators[code] = body
            return self._send_json(200, {"indicator": code, "rows": len(body)})
        return self._odata_error(404, "unknown control endpoint")


def _parse_generate(values):
    generated = {}
    for text in values or []:
        code, _, count = text.partition("=")
        if not code or not count.isdigit():
            raise argparse.ArgumentTypeError(f"--generate wants CODE=ROWS, got {text!r}")
        generated[code] = int(count)
    return generated


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Serve a stand-in for the WHO GHO OData API on this machine.",
        epilog="Control endpoints: POST /_control/faults "
        '{"kind": "status", "status": 503, "times": 2, "after": 0, "path": null}, '
        "POST /_control/indicators/CODE [rows], POST /_control/reset, GET /_control/requests. "
        f"Fault kinds: {', '.join(FAULT_KINDS)}.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    parser.add_argument("--samples", type=Path, default=None, help="sample folder (default ../shared/gho_samples)")
    parser.add_argument("--no-samples", action="store_true", help="serve generated data only")
    parser.add_argument("--generate", action="append", metavar="CODE=ROWS", help="serve a generated indicator")
    parser.add_argument("--max-page-size", type=int, default=None, help="page large answers with @odata.nextLink")
    parser.add_argument(
        "--vary-every", type=int, default=0, metavar="K", help="revise every K-th generated row's value (0: none)"
    )
    args = parser.parse_args(argv)
    try:
        generated = _parse_generate(args.generate)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    try:
        stub = StubServer(
            args.host, args.port, args.samples, generated, use_samples=not args.no_samples, vary_every=args.vary_every
        )
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    stub.set_max_page_size(args.max_page_size)
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
