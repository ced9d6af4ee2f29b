"""Asking the GHO stand-in over HTTP, as the tests of the stand-in itself do.

A plain module (not conftest): the indicator the stand-in tests serve, a GET
of it, the Ids of an answer, streaming an answer to its end, and waiting for
what the stand-in recorded about a fault.
"""

import time

import requests

CODE = "WHOSIS_000001"
TIMEOUT = 10


def stub_get(stub, path=CODE, **params):
    """GET `path` (the test indicator by default) from the stand-in with `params`."""
    return requests.get(f"{stub.base_url}/{path}", params=params, timeout=TIMEOUT)


def row_ids(payload):
    """The Ids of the rows in an answer, in the order sent."""
    return [row["Id"] for row in payload["value"]]


def wait_for(predicate, timeout=5.0):
    """The first true value of `predicate()`, polled for up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def last_fault_entry(stub, kind):
    """The stand-in's record of the last request answered with the fault `kind`."""
    return [r for r in stub.requests if r.get("fault") == kind][-1]


def get_stream(stub):
    """GET the test indicator, body left unread."""
    return requests.get(f"{stub.base_url}/{CODE}", stream=True, timeout=TIMEOUT)


def read_until_end(answer, limit=1 << 24):
    """The raw bytes of a streamed answer until it ends (or `limit` bytes); the answer is closed."""
    received = b""
    try:
        while len(received) < limit:
            piece = answer.raw.read(1 << 16, decode_content=False)
            if not piece:
                break
            received += piece
    except Exception:  # the body ended short of its Content-Length
        pass
    answer.close()
    return received
