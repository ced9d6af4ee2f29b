"""The stand-in's floods and error bodies, and the stand-in as a command of its own.

An endless body runs until the client goes or its byte limit, a gzip bomb is
small on the wire and inflates to the size asked, an error body is sent once
as given, `--help` documents every fault, mode and control endpoint, and a
separate process starts in the mode it is given and is controlled over HTTP.
"""

import select
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import requests

from tests.stub_checks import CODE, TIMEOUT
from tests.stub_checks import get_stream as _get_stream
from tests.stub_checks import last_fault_entry as _fault_entry
from tests.stub_checks import read_until_end as _read_until_end
from tests.stub_checks import stub_get as _get
from tests.stub_checks import wait_for as _wait_for
from utils.gho_stub import DEFAULT_MODE, FAULT_KINDS, gzip_bomb_body, main

STUB_SCRIPT = Path(__file__).resolve().parents[1] / "utils" / "gho_stub.py"


# --- floods ---------------------------------------------------------------------------


def test_endless_streams_rows_until_the_client_closes(stub):
    stub.add_fault("endless")
    with requests.Session() as session:
        answer = session.get(f"{stub.base_url}/{CODE}", stream=True, timeout=TIMEOUT)
        assert answer.status_code == 200 and "Content-Length" not in answer.headers
        assert answer.headers["Content-Type"] == "application/json"
        received = b""
        for _ in range(100):
            received += answer.raw.read(1 << 16)
            if len(received) >= 1 << 18:
                break
        answer.close()
    assert received.startswith(b'{"value": [{"Id": 1, "Comments": "xxxx')
    entry = _wait_for(lambda: _fault_entry(stub, "endless").get("ended") and _fault_entry(stub, "endless"))
    assert entry["ended"] == "client gone" and entry["sent"] >= len(received)


def test_endless_stops_at_its_byte_limit(stub):
    stub.add_fault("endless", limit_bytes=300_000)
    answer = _get(stub)
    assert len(answer.content) == 300_000
    assert _wait_for(lambda: _fault_entry(stub, "endless").get("ended")) == "limit"


def test_gzip_bomb_is_small_on_the_wire_and_large_inflated(stub):
    stub.add_fault("gzip_bomb", inflated=32 << 20)
    answer = _get_stream(stub)
    assert answer.status_code == 200 and answer.headers["Content-Encoding"] == "gzip"
    size = int(answer.headers["Content-Length"])
    assert size < 1 << 20
    raw = _read_until_end(answer)
    assert len(raw) == size
    inflater = zlib.decompressobj(31)
    prefix = inflater.decompress(raw, 1 << 16)
    assert len(prefix) == 1 << 16 and prefix.startswith(b'{"value": [') and not prefix[11:].strip()
    assert inflater.unconsumed_tail  # far more to come
    assert gzip_bomb_body(32 << 20) is gzip_bomb_body(32 << 20)  # built once per size


def test_gzip_bomb_inflates_to_the_size_asked():
    body, inflater, total = gzip_bomb_body(3_000_000), zlib.decompressobj(31), 0
    for _ in range(100):
        total += len(inflater.decompress(body, 1 << 20))
        body = inflater.unconsumed_tail
        if not body:
            break
    assert total + len(inflater.flush()) == 3_000_000


def test_gzip_bomb_default_size(stub):
    stub.add_fault("gzip_bomb")
    answer = _get_stream(stub)
    assert answer.headers["Content-Encoding"] == "gzip" and int(answer.headers["Content-Length"]) < 2 << 20
    answer.close()


def test_error_body(stub):
    text = "\x1b[31mERROR\x1b[0m\r\nretry\rlater \u00e9"
    stub.add_fault("error_body", status=502, body=text)
    answer = _get(stub)
    assert answer.status_code == 502 and answer.headers["Content-Type"] == "text/plain"
    assert answer.content == text.encode("utf-8")
    assert _get(stub).status_code == 200  # once


# --- the stand-in as a command -----------------------------------------------------------


def test_help_documents_every_fault_mode_and_endpoint(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for word in (*FAULT_KINDS, *DEFAULT_MODE, "/_control/mode", "/_control/faults", "/_control/after_requests"):
        assert word in text


def test_a_separate_process_starts_in_its_mode_and_is_controlled_over_http():
    command = [sys.executable, str(STUB_SCRIPT), "--port", "0", "--no-samples", "--generate", "GEN_X=200"]
    command += ["--mode", '{"max_page_size": 50, "link_style": "relative"}', "--latency", "0.01"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 15)
        line = process.stdout.readline() if ready else ""
        assert " at http" in line, line
        base = line.rsplit(" at ", 1)[1].strip()
        control = base.replace("/api", "/_control")
        assert requests.get(f"{control}/mode", timeout=TIMEOUT).json()["max_page_size"] == 50
        assert requests.get(f"{control}/mode", timeout=TIMEOUT).json()["latency"] == 0.01
        assert requests.get(f"{base}/GEN_X", timeout=TIMEOUT).json()["@odata.nextLink"].startswith("GEN_X?")
        requests.post(f"{control}/mode", json={"cap": 7}, timeout=TIMEOUT).raise_for_status()
        requests.post(f"{control}/faults", json={"kind": "error_body", "body": "no"}, timeout=TIMEOUT)
        assert requests.get(f"{base}/GEN_X", timeout=TIMEOUT).content == b"no"
        assert len(requests.get(f"{base}/GEN_X", timeout=TIMEOUT).json()["value"]) == 7
        requests.post(f"{control}/reset", json={}, timeout=TIMEOUT).raise_for_status()
        mode = requests.get(f"{control}/mode", timeout=TIMEOUT).json()
        assert mode == dict(DEFAULT_MODE, max_page_size=50, link_style="relative", latency=0.01)  # the start-up mode
        assert requests.get(f"{control}/in_flight", timeout=TIMEOUT).json()["max_in_flight"] == 0
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
