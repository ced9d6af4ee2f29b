"""The GHO stand-in's $count, keyset fast path, modes and hostile faults, over real HTTP on 127.0.0.1."""

import json
import random
import select
import subprocess
import sys
import time
import zlib
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from utils.gho_samples import FIELDS, generate_rows
from utils.gho_stub import DEFAULT_MODE, FAULT_KINDS, gzip_bomb_body, main
from utils.odata import apply_query

CODE = "WHOSIS_000001"
STUB_SCRIPT = Path(__file__).resolve().parents[1] / "utils" / "gho_stub.py"
TIMEOUT = 10


def _get(stub, path=CODE, **params):
    return requests.get(f"{stub.base_url}/{path}", params=params, timeout=TIMEOUT)


def _ids(payload):
    return [row["Id"] for row in payload["value"]]


def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def _fault_entry(stub, kind):
    return [r for r in stub.requests if r.get("fault") == kind][-1]


def _query(url):
    return parse_qs(urlsplit(url).query)


@pytest.fixture
def rows(stub):
    """300 generated rows, served out of Id order so $orderby matters."""
    rows = generate_rows(CODE, 300)
    random.Random(3).shuffle(rows)
    stub.set_rows(CODE, rows)
    return rows


# --- $count ---------------------------------------------------------------------------


def test_count_comes_right_after_the_context_and_counts_the_filter(stub, rows):
    answer = _get(stub, **{"$count": "true", "$filter": "Dim1 eq 'SEX_FMLE'", "$top": "7", "$skip": "3"})
    assert answer.status_code == 200
    keys = json.loads(answer.content, object_pairs_hook=lambda pairs: [k for k, _ in pairs])
    assert keys == ["@odata.context", "@odata.count", "value"]
    payload = answer.json()
    assert payload["@odata.count"] == sum(r["Dim1"] == "SEX_FMLE" for r in rows) == 100
    assert len(payload["value"]) == 7
    assert _get(stub, **{"$count": "TRUE", "$top": "1"}).json()["@odata.count"] == 300


def test_count_only_when_asked(stub, rows):
    assert "@odata.count" not in _get(stub, **{"$top": "1"}).json()
    assert "@odata.count" not in _get(stub, **{"$top": "1", "$count": "false"}).json()
    assert _get(stub, **{"$count": "maybe"}).status_code == 400


def test_count_on_the_select_path_and_the_catalogue(stub, rows):
    payload = _get(stub, **{"$count": "true", "$select": "Id,Dim1", "$filter": "TimeDim ge 2000", "$top": "2"}).json()
    assert payload["@odata.count"] == sum(r["TimeDim"] >= 2000 for r in rows)
    assert [set(r) for r in payload["value"]] == [{"Id", "Dim1"}] * 2
    catalogue = _get(stub, "Indicator", **{"$count": "true", "$top": "1"}).json()
    assert len(catalogue["value"]) == 1 and catalogue["@odata.count"] >= 1


def test_by_default_everything_comes_in_one_answer(stub):
    stub.set_rows(CODE, generate_rows(CODE, 20000))
    payload = _get(stub, **{"$orderby": "Id"}).json()
    assert len(payload["value"]) == 20000 and "@odata.nextLink" not in payload
    assert stub.mode == DEFAULT_MODE


# --- keyset fast path -----------------------------------------------------------------


@pytest.mark.parametrize("user", [None, "Dim1 eq 'SEX_FMLE'", "Dim1 eq 'SEX_MLE' or TimeDim ge 2000"])
def test_keyset_pages_match_apply_query(stub, user):
    rows = generate_rows(CODE, 3000)
    random.Random(7).shuffle(rows)
    stub.set_rows(CODE, rows)
    for bound in (-5, 0, 1, 17, 1500, 2999, 3000, 10**15):
        text = f"Id gt {bound}" if user is None else f"({user}) and Id gt {bound}"
        for extra in ({}, {"$top": "100"}, {"$skip": "7", "$top": "50"}):
            params = {"$orderby": "Id", "$filter": text, **extra}
            payload = _get(stub, **params, **{"$count": "true"}).json()
            assert payload["value"] == apply_query(rows, params, FIELDS), (text, extra)
            assert payload["@odata.count"] == len(apply_query(rows, {"$filter": text}, FIELDS))
    assert list(stub.state.encoded) == [(CODE, user, "Id")]  # served from the query without the bound


def test_keyset_pages_share_one_encoding(stub):
    stub.set_rows(CODE, generate_rows(CODE, 5000))
    stub.prepare(CODE)
    cached = stub.state.encoded[(CODE, None, "Id")]
    last, pages = 0, 0
    while pages < 10:
        params = {"$orderby": "Id", "$top": "1000", "$count": "true"}
        if last:
            params["$filter"] = f"Id gt {last}"
        payload = _get(stub, **params).json()
        assert payload["@odata.count"] == 5000 - last
        if not payload["value"]:
            break
        assert _ids(payload) == list(range(last + 1, last + 1 + len(payload["value"])))
        last, pages = payload["value"][-1]["Id"], pages + 1
    assert (pages, last) == (5, 5000)
    assert _get(stub, **{"$top": "0", "$count": "true"}).json() == {
        "@odata.context": f"{stub.base_url}/$metadata#{CODE}",
        "@odata.count": 5000,
        "value": [],
    }
    assert stub.state.encoded[(CODE, None, "Id")] is cached  # neither the pages nor the count request re-encode


@pytest.mark.parametrize(
    "text", [None, "Id gt 120", "Dim1 eq 'SEX_FMLE'", "(Dim1 eq 'SEX_FMLE') and Id gt 120", "TimeDim lt 1970"]
)
def test_count_requests_count_without_rows(stub, rows, text):
    stub.prepare(CODE)
    _get(stub, **{"$orderby": "Id", "$filter": "Dim1 eq 'SEX_FMLE'", "$top": "1"})  # a cached filtered query
    params = {"$top": "0", "$count": "true", **({"$filter": text} if text else {})}
    payload = _get(stub, **params).json()
    assert payload["value"] == [] and payload["@odata.count"] == len(apply_query(rows, {"$filter": text}, FIELDS))
    assert _get(stub, **params, **{"$orderby": "Nope"}).status_code == 400


@pytest.mark.parametrize(
    "text",
    [
        "Id gt 5 and Dim1 eq 'SEX_FMLE'",
        "(Dim1 eq 'SEX_MLE') or (TimeDim ge 2000) and Id gt 100",
        "(Dim1 eq 'SEX_MLE') and Id ge 100",
    ],
)
def test_other_filters_go_the_normal_way(stub, rows, text):
    params = {"$orderby": "Id", "$filter": text}
    assert _get(stub, **params).json()["value"] == apply_query(rows, params, FIELDS)
    assert list(stub.state.encoded) == [(CODE, text, "Id")]


def test_keyset_with_ids_that_are_not_all_numbers(stub):
    rows = generate_rows(CODE, 20)
    rows[3]["Id"], rows[5]["Id"] = None, "x"
    stub.set_rows(CODE, rows)
    params = {"$orderby": "Id", "$filter": "(Dim1 ne 'SEX_BTSX') and Id gt 4"}
    assert _get(stub, **params).json()["value"] == apply_query(rows, params, FIELDS)


# --- modes ----------------------------------------------------------------------------


def test_cap_mode(stub, rows):
    stub.set_mode(cap=25, max_page_size=10)
    payload = _get(stub, **{"$top": "1000", "$count": "true"}).json()
    assert len(payload["value"]) == 25 and "@odata.nextLink" not in payload
    assert payload["@odata.count"] == 300
    assert len(_get(stub, **{"$top": "5"}).json()["value"]) == 5


def test_ignore_skip_mode(stub, rows):
    stub.set_mode(ignore_skip=True)
    assert _ids(_get(stub, **{"$orderby": "Id", "$skip": "30", "$top": "5"}).json()) == [1, 2, 3, 4, 5]


def test_ignore_keyset_mode(stub, rows):
    stub.set_mode(ignore_keyset=True)
    assert _ids(_get(stub, **{"$orderby": "Id", "$filter": "Id gt 30", "$top": "5"}).json()) == [1, 2, 3, 4, 5]
    params = {"$orderby": "Id", "$filter": "(Dim1 eq 'SEX_FMLE') and Id gt 200", "$skip": "2", "$top": "3"}
    payload = _get(stub, **params, **{"$count": "true"}).json()
    females = apply_query(rows, {"$orderby": "Id", "$filter": "Dim1 eq 'SEX_FMLE'"}, FIELDS)
    assert payload["value"] == females[2:5] and payload["@odata.count"] == len(females)


def test_no_count_mode(stub, rows):
    stub.set_mode(no_count=True)
    assert "@odata.count" not in _get(stub, **{"$count": "true", "$top": "1"}).json()


def test_max_page_size_mode_pages_with_the_same_count_on_every_piece(stub, rows):
    stub.set_mode(max_page_size=20)
    url, params, pieces = f"{stub.base_url}/{CODE}", {"$orderby": "Id", "$top": "45", "$count": "true"}, []
    for _ in range(10):
        payload = requests.get(url, params=params, timeout=TIMEOUT).json()
        pieces.append(payload)
        url, params = payload.get("@odata.nextLink"), None
        if not url:
            break
    assert [len(p["value"]) for p in pieces] == [20, 20, 5]
    assert [p["@odata.count"] for p in pieces] == [300] * 3
    assert [i for p in pieces for i in _ids(p)] == list(range(1, 46))
    stub.reset_mode()
    stub.set_max_page_size(100)  # the old way still works
    assert stub.mode["max_page_size"] == 100 and len(_get(stub).json()["value"]) == 100


def test_cycle_links_mode(stub, rows):
    stub.set_mode(max_page_size=20, cycle_links=True)
    first = _get(stub, **{"$orderby": "Id", "$top": "100"})
    second = requests.get(first.json()["@odata.nextLink"], timeout=TIMEOUT)
    assert _ids(second.json()) == list(range(21, 41))
    back = second.json()["@odata.nextLink"]
    assert back == first.url
    assert requests.get(back, timeout=TIMEOUT).json()["@odata.nextLink"] == first.json()["@odata.nextLink"]


def test_next_link_base_mode(stub, rows):
    stub.set_mode(max_page_size=20)
    plain = _get(stub, **{"$orderby": "Id"}).json()["@odata.nextLink"]
    stub.set_mode(next_link_base="http://127.0.0.1:9/api")
    moved = _get(stub, **{"$orderby": "Id"}).json()["@odata.nextLink"]
    assert moved == plain.replace(stub.base_url, "http://127.0.0.1:9/api") != plain


def test_relative_link_style_mode(stub, rows):
    stub.set_mode(max_page_size=20, link_style="relative")
    first = _get(stub, **{"$orderby": "Id"})
    link = first.json()["@odata.nextLink"]
    assert link.startswith(f"{CODE}?") and _query(link)["$skip"] == ["20"]
    assert _ids(requests.get(urljoin(first.url, link), timeout=TIMEOUT).json()) == list(range(21, 41))


def test_modes_leave_the_catalogue_alone(stub, rows):
    stub.set_mode(cap=1, ignore_skip=True)
    assert len(_get(stub, "Indicator").json()["value"]) > 1
    assert (
        len(_get(stub, "Indicator", **{"$skip": "1"}).json()["value"])
        == len(_get(stub, "Indicator").json()["value"]) - 1
    )


def test_modes_over_http(stub, rows):
    control = stub.base_url.replace("/api", "/_control")
    answer = requests.post(f"{control}/mode", json={"cap": 3, "link_style": "relative"}, timeout=TIMEOUT)
    assert answer.status_code == 200 and answer.json()["cap"] == 3
    assert requests.get(f"{control}/mode", timeout=TIMEOUT).json() == dict(DEFAULT_MODE, cap=3, link_style="relative")
    assert len(_get(stub).json()["value"]) == 3
    for bad in ({"bogus": 1}, {"cap": 0}, {"link_style": "sideways"}, {"no_count": "yes"}, [1]):
        assert requests.post(f"{control}/mode", json=bad, timeout=TIMEOUT).status_code == 400
    assert requests.post(f"{control}/reset", json={}, timeout=TIMEOUT).status_code == 200
    assert stub.mode == DEFAULT_MODE and len(_get(stub).json()["value"]) == 300


def test_rows_change_after_the_nth_data_request(stub):
    stub.set_rows(CODE, generate_rows(CODE, 50))
    runs = []

    def change(server):
        runs.append(server)
        server.delete_rows(CODE, [12, 13])
        server.insert_rows(CODE, [dict(generate_rows(CODE, 1)[0], Id=1000)])

    stub.after_requests(2, change)
    page = {"$orderby": "Id", "$top": "10", "$count": "true"}
    assert _ids(_get(stub, **page).json()) == list(range(1, 11))
    _get(stub, "Indicator")  # not indicator data: not counted
    assert runs == []
    assert _ids(_get(stub, **page, **{"$filter": "Id gt 5"}).json()) == list(range(6, 16))
    payload = _get(stub, **page, **{"$filter": "Id gt 10"}).json()
    assert _ids(payload) == [11] + list(range(14, 23))
    assert payload["@odata.count"] == 50 - 10 - 2 + 1
    assert _ids(_get(stub, **page, **{"$filter": "Id gt 45"}).json()) == [46, 47, 48, 49, 50, 1000]
    assert runs == [stub]


def test_rows_change_after_requests_over_http(stub):
    stub.set_rows(CODE, generate_rows(CODE, 10))
    control = stub.base_url.replace("/api", "/_control")
    body = {"n": 1, "action": "delete_rows", "code": CODE, "ids": [1, 2]}
    assert requests.post(f"{control}/after_requests", json=body, timeout=TIMEOUT).status_code == 200
    assert _ids(_get(stub, **{"$orderby": "Id"}).json()) == list(range(1, 11))
    assert _ids(_get(stub, **{"$orderby": "Id"}).json()) == list(range(3, 11))
    body = {"n": 0, "action": "insert_rows", "code": CODE, "rows": [{"Id": 99, "IndicatorCode": CODE}]}
    assert requests.post(f"{control}/after_requests", json=body, timeout=TIMEOUT).status_code == 200
    assert _ids(_get(stub, **{"$orderby": "Id"}).json())[-1] == 99
    for bad in ({"n": 1, "action": "drop_table", "code": CODE}, {"n": "1", "action": "delete_rows", "code": CODE}):
        assert requests.post(f"{control}/after_requests", json=bad, timeout=TIMEOUT).status_code == 400


# --- faults ---------------------------------------------------------------------------


def test_drip_sends_a_byte_per_interval_and_stops_when_the_client_goes(stub, rows):
    expected = _get(stub, **{"$top": "2"}).content
    stub.add_fault("drip", seconds=0.05)
    with requests.Session() as session:
        answer = session.get(f"{stub.base_url}/{CODE}", params={"$top": "2"}, stream=True, timeout=TIMEOUT)
        assert answer.status_code == 200 and int(answer.headers["Content-Length"]) == len(expected)
        started, received = time.monotonic(), b""
        for _ in range(4):
            received += answer.raw.read(1)
        elapsed = time.monotonic() - started
        answer.close()
    assert received == expected[:4]
    assert 0.1 <= elapsed < 2.0  # three intervals of 0.05 s between the four bytes
    entry = _wait_for(lambda: "ended" in _fault_entry(stub, "drip") and _fault_entry(stub, "drip"))
    assert entry["ended"] == "client gone" and entry["sent"] < len(expected)


def test_drip_stops_at_its_time_limit(stub, rows):
    stub.add_fault("drip", seconds=0.05, limit_s=0.3)
    started = time.monotonic()
    answer = _get_stream(stub)
    received = _read_until_end(answer)
    assert time.monotonic() - started < 2.0
    assert 0 < len(received) < int(answer.headers["Content-Length"])
    assert _wait_for(lambda: _fault_entry(stub, "drip").get("ended")) == "limit"


def _get_stream(stub):
    return requests.get(f"{stub.base_url}/{CODE}", stream=True, timeout=TIMEOUT)


def _read_until_end(answer, limit=1 << 24):
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


def test_redirect(stub, rows):
    stub.add_fault("redirect", location="http://127.0.0.1:9/api/elsewhere")
    answer = requests.get(f"{stub.base_url}/{CODE}", allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code == 302 and answer.headers["Location"] == "http://127.0.0.1:9/api/elsewhere"
    assert answer.content == b""
    stub.add_fault("redirect", status=307)
    answer = requests.get(f"{stub.base_url}/{CODE}", params={"$top": "1"}, allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code == 307 and answer.headers["Location"] == answer.url  # a loop


def test_error_body(stub):
    text = "\x1b[31mERROR\x1b[0m\r\nretry\rlater \u00e9"
    stub.add_fault("error_body", status=502, body=text)
    answer = _get(stub)
    assert answer.status_code == 502 and answer.headers["Content-Type"] == "text/plain"
    assert answer.content == text.encode("utf-8")
    assert _get(stub).status_code == 200  # once


@pytest.mark.parametrize("options,expected", [({}, 100), ({"count": 0}, 0), ({"count": None}, None)])
def test_empty_value(stub, rows, options, expected):
    stub.add_fault("empty_value", **options)
    payload = _get(stub, **{"$count": "true", "$filter": "Dim1 eq 'SEX_MLE'"}).json()
    assert payload["value"] == [] and payload.get("@odata.count") == expected
    assert payload["@odata.context"].endswith(f"#{CODE}")


def test_new_faults_over_http_with_times_after_and_path(stub, rows):
    control = stub.base_url.replace("/api", "/_control")
    fault = {"kind": "empty_value", "count": None, "after": 1, "times": 2, "path": CODE}
    assert requests.post(f"{control}/faults", json=fault, timeout=TIMEOUT).status_code == 200
    assert len(_get(stub, "Indicator").json()["value"]) > 0  # another path
    assert len(_get(stub).json()["value"]) == 300  # let through
    assert [_get(stub, **{"$count": "true"}).json() for _ in range(2)] == [
        {"@odata.context": f"{stub.base_url}/$metadata#{CODE}", "value": []}
    ] * 2
    assert len(_get(stub).json()["value"]) == 300
    assert requests.post(f"{control}/faults", json={"kind": "lava"}, timeout=TIMEOUT).status_code == 400


def test_help_documents_every_fault_mode_and_endpoint(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for word in (*FAULT_KINDS, *DEFAULT_MODE, "/_control/mode", "/_control/faults", "/_control/after_requests"):
        assert word in text


def test_a_separate_process_starts_in_its_mode_and_is_controlled_over_http():
    command = [sys.executable, str(STUB_SCRIPT), "--port", "0", "--no-samples", "--generate", "GEN_X=200"]
    command += ["--mode", '{"max_page_size": 50, "link_style": "relative"}']
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 15)
        line = process.stdout.readline() if ready else ""
        assert " at http" in line, line
        base = line.rsplit(" at ", 1)[1].strip()
        control = base.replace("/api", "/_control")
        assert requests.get(f"{control}/mode", timeout=TIMEOUT).json()["max_page_size"] == 50
        assert requests.get(f"{base}/GEN_X", timeout=TIMEOUT).json()["@odata.nextLink"].startswith("GEN_X?")
        requests.post(f"{control}/mode", json={"cap": 7}, timeout=TIMEOUT).raise_for_status()
        requests.post(f"{control}/faults", json={"kind": "error_body", "body": "no"}, timeout=TIMEOUT)
        assert requests.get(f"{base}/GEN_X", timeout=TIMEOUT).content == b"no"
        assert len(requests.get(f"{base}/GEN_X", timeout=TIMEOUT).json()["value"]) == 7
        requests.post(f"{control}/reset", json={}, timeout=TIMEOUT).raise_for_status()
        mode = requests.get(f"{control}/mode", timeout=TIMEOUT).json()
        assert mode == dict(DEFAULT_MODE, max_page_size=50, link_style="relative")  # the start-up mode
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
