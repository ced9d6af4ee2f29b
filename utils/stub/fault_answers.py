"""The hostile answers each fault kind writes to the socket (the kinds and their options: utils/stub/faults.py).

They exist so the client's defences (deadlines, size limits, retries, redirect and decompression
limits) are tested against a real socket rather than mocks.
"""

import socket
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Callable

from utils.stub.wire import JSON_CONTENT_TYPE, context_url

HTML_ERROR_PAGE = b"<html><head><title>Service Unavailable</title></head><body><h1>Upstream error</h1></body></html>"
VALUE_PREFIX = b'{"value": ['
# The endless body: 128-byte rows, 512 of them a 64 KiB write.
ENDLESS_ROW = b'{"Id": 1, "Comments": "' + b"x" * 101 + b'"}, '
ENDLESS_BLOCK = ENDLESS_ROW * 512
_gzip_bombs = {}  # inflated size -> compressed body
_gzip_lock = threading.Lock()


def gzip_bomb_body(inflated: int) -> bytes:
    """A gzip stream of `{"value": [` and spaces, `inflated` bytes in all; built in 1 MiB blocks, once per size."""
    inflated = max(int(inflated), len(VALUE_PREFIX))
    with _gzip_lock:
        body = _gzip_bombs.get(inflated)
        if body is None:
            compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
            pieces = [compressor.compress(VALUE_PREFIX)]
            block = b" " * (1 << 20)
            left = inflated - len(VALUE_PREFIX)
            while left > 0:
                pieces.append(compressor.compress(block[: min(left, len(block))]))
                left -= len(block)
            pieces.append(compressor.flush())
            body = _gzip_bombs[inflated] = b"".join(pieces)
    return body


@dataclass
class FaultedRequest:
    """What a fault's answer may need: the handler that writes it, the fault, the normal answer, the log entry."""

    handler: object  # a utils.stub.handler.StubHandler
    fault: dict
    answer: Callable[[], dict]  # the normal answer, made on first call: {"status", "body", "count"}
    entry: dict  # the request's entry in the request log
    resource: str

    def body(self) -> bytes:
        return self.answer()["body"]


def answer_with_fault(request: FaultedRequest) -> bool:
    """Answer as the fault says; False when the normal answer should follow (slow)."""
    kind = request.fault["kind"]
    if kind == "slow":
        time.sleep(float(request.fault.get("seconds", 5)))
        return False  # then answer normally
    if kind == "stall":
        _stall(request)  # a client gone before the pause is an error of the handler, as for a normal answer
        return True
    try:
        _ANSWERS[kind](request)
    except OSError:
        request.handler.close_connection = True  # the client went away
    return True


def _stall(request):
    """Half the body, a pause, then the rest: a download in progress."""
    body, handler = request.body(), request.handler
    handler.send_head(200, JSON_CONTENT_TYPE, len(body))
    handler.wfile.write(body[: len(body) // 2])
    handler.wfile.flush()
    time.sleep(float(request.fault.get("seconds", 5)))
    try:
        handler.wfile.write(body[len(body) // 2 :])
    except OSError:
        pass  # the client went away mid-download


def _drip(request):
    """The real headers, then the body a byte every `seconds`, for at most `limit_s` in all."""
    body, handler, state = request.body(), request.handler, request.handler.state
    seconds = float(request.fault.get("seconds", 1.0))
    limit = float(request.fault.get("limit_s", 120))
    started = time.monotonic()
    handler.send_head(200, JSON_CONTENT_TYPE, len(body))
    sent, ended = 0, "complete"
    for index in range(len(body)):
        try:
            handler.wfile.write(body[index : index + 1])
        except OSError:
            ended = "client gone"
            break
        sent += 1
        if sent == len(body):
            break
        if time.monotonic() - started + seconds > limit:
            ended = "limit"
            break
        if state.stopping.wait(seconds):
            ended = "stopped"
            break
    _end_stream(request, sent, ended)


def _end_stream(request, sent, ended):
    """Record how a streamed answer ended, and close the connection after it."""
    with request.handler.state.lock:  # the request log may be read meanwhile
        request.entry.update(sent=sent, ended=ended)
    request.handler.close_connection = True


def _endless(request):
    """`{"value": [` then rows for ever, in 64 KiB writes, until a write fails or limit_bytes are sent."""
    handler, state = request.handler, request.handler.state
    limit = int(request.fault.get("limit_bytes", 2 << 30))
    handler.connection.settimeout(float(request.fault.get("write_timeout_s", 30)))  # a client that stops reading
    handler.send_head(200, "application/json", headers={"Connection": "close"})
    sent, ended = 0, "limit"
    while sent < limit:
        piece = (VALUE_PREFIX if sent == 0 else ENDLESS_BLOCK)[: limit - sent]
        try:
            handler.wfile.write(piece)
        except OSError:
            ended = "client gone"
            break
        sent += len(piece)
        if state.stopping.is_set():
            ended = "stopped"
            break
    _end_stream(request, sent, ended)


def _gzip_bomb(request):
    body = gzip_bomb_body(request.fault.get("inflated", 512 << 20))
    request.handler.send_body(200, body, content_type="application/json", headers={"Content-Encoding": "gzip"})


def _redirect(request):
    handler, fault = request.handler, request.fault
    location = fault.get("location") or f"{handler.origin}{handler.path}"
    handler.send_body(int(fault.get("status", 302)), b"", content_type="text/plain", headers={"Location": location})


def _error_body(request):
    body = request.fault.get("body", "injected error")
    body = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    request.handler.send_body(int(request.fault.get("status", 500)), body, content_type="text/plain")


def _empty_value(request):
    """`"value": []`, with the count the fault gives or, without one, the real answer's."""
    count = request.fault["count"] if "count" in request.fault else request.answer()["count"]
    payload = {"@odata.context": context_url(request.handler.origin, request.resource)}
    if count is not None:
        payload["@odata.count"] = int(count)
    payload["value"] = []
    request.handler.send_json(200, payload)


def _status(request):
    fault = request.fault
    status = int(fault.get("status", 503))
    headers = {"Retry-After": str(fault["retry_after"])} if fault.get("retry_after") is not None else None
    request.handler.send_body(status, b'{"error": {"message": "injected fault"}}', headers=headers)


def _empty(request):
    request.handler.send_body(200, b"")


def _html(request):
    request.handler.send_body(200, HTML_ERROR_PAGE, content_type="text/html")


def _truncate(request):
    body = request.body()
    request.handler.send_body(200, body[: max(1, len(body) // 2)])


def _reset(request):
    """Half the body, then a TCP reset (SO_LINGER 0) instead of the rest."""
    body, handler = request.body(), request.handler
    handler.send_head(200, "application/json", len(body))
    handler.wfile.write(body[: max(1, len(body) // 2)])
    handler.wfile.flush()
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    handler.connection.close()


_ANSWERS = {  # every kind but slow and stall, which answer_with_fault handles itself
    "drip": _drip,
    "endless": _endless,
    "gzip_bomb": _gzip_bomb,
    "redirect": _redirect,
    "error_body": _error_body,
    "empty_value": _empty_value,
    "status": _status,
    "empty": _empty,
    "html": _html,
    "truncate": _truncate,
    "reset": _reset,
}
