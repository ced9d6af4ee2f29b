"""The HTTP request handler: routes /api/... to the data, the catalogue or a fault, and /_control/... to control.

It also logs every request it answers (but control requests), which is what tests read instead of logs.
"""

import json
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from utils.stub.catalogue import answer_resource, is_reference
from utils.stub.control import control_get, control_post
from utils.stub.fault_answers import FaultedRequest, answer_with_fault
from utils.stub.faults import recorded_status
from utils.stub.paging import DataAnswer
from utils.stub.state import StubState
from utils.stub.wire import API_PREFIX, JSON_CONTENT_TYPE, encode_json, error_payload


class StubHandler(BaseHTTPRequestHandler):
    """One request; `state` is set on a subclass per server (StubServer), so servers in one process stay apart."""

    protocol_version = "HTTP/1.0"
    server_version = "gho-stub/1.0"
    state: StubState = None
    arrived = None  # time.monotonic() when the request came in

    def log_message(self, format, *args):  # quiet: tests read the request log instead
        pass

    # --- writing answers (also used by utils/stub/fault_answers.py) ------------
    def send_head(self, status, content_type, length=None, headers=None):
        """Status line and headers: Content-Type, Content-Length when `length` is given, then `headers`."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()

    def send_body(self, status, body: bytes, content_type=JSON_CONTENT_TYPE, headers=None):
        self.send_head(status, content_type, len(body), headers)
        self.wfile.write(body)

    def send_json(self, status, obj):
        self.send_body(status, encode_json(obj))

    @property
    def origin(self):
        """http://host:port of this stand-in, the base of its absolute URLs."""
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def record(self, status, fault=None):
        """Log this request; return its log entry (drip and endless add to it once they end)."""
        split = urlsplit(self.path)
        entry = {
            "method": self.command,
            "path": split.path,
            "query": split.query,
            "status": status,
            "arrived": self.arrived,  # when the request came in, before any latency
            "at": time.monotonic(),
        }
        if fault:
            entry["fault"] = fault["kind"]
        with self.state.lock:
            self.state.requests.append(entry)
        return entry

    # --- requests -----------------------------------------------------------------
    def do_GET(self):
        self.arrived = time.monotonic()
        split = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        if split.path.startswith("/_control/"):
            return self.send_json(*control_get(self.state, split.path))
        if not split.path.startswith(API_PREFIX + "/"):
            self.record(404)
            return self.send_json(404, error_payload("Not found"))
        resource = split.path[len(API_PREFIX) + 1 :].rstrip("/")
        if is_reference(resource):
            return self._answer(resource, params, split)
        actions = self.state.actions
        number = actions.next_data_request()
        actions.run_due(number - 1)  # an action due after the previous request has run
        self.state.data_request_began()
        try:
            latency = self.state.modes.now()["latency"]
            if latency:
                time.sleep(latency)
            self._answer(resource, params, split)
        finally:
            self.state.data_request_ended()
            actions.run_due(number)

    def do_POST(self):
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            return self.send_json(400, error_payload("body is not JSON"))
        self.send_json(*control_post(self.state, split.path, body))

    def _answer(self, resource, params, split):
        """The answer to GET /api/<resource>: a fault's, if one fires, else the normal one."""
        fault = self.state.faults.take(split.path)
        holder = {}

        def answer():
            if not holder:
                holder["status"], holder["body"], holder["count"] = self._respond(resource, params, split)
            return holder

        if fault:
            entry = self.record(recorded_status(fault), fault)
            if answer_with_fault(FaultedRequest(self, fault, answer, entry, resource)):
                return
        answer()
        if not fault:
            self.record(holder["status"])
        self.send_body(holder["status"], holder["body"])

    def _respond(self, resource, params, split):
        """(status, body, @odata.count or None) of the normal answer."""
        if not is_reference(resource):
            rows = self.state.rows(resource)
            if rows is not None:
                return DataAnswer(self.state, resource, split, self.origin).answer(rows, params)
        status, payload = answer_resource(self.state, resource, params, self.origin)
        return status, encode_json(payload), payload.get("@odata.count")
