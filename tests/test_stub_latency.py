"""The stand-in for concurrent paging: latency, the most requests in flight, Id ranges and their upper bound.

A latency-bound extract is what concurrent paging is for, so the stand-in can be told to wait before
every data answer (mode `latency`, or `--latency S` on its command line) and counts the data requests it
is answering at once, keeping the most (GET /_control/in_flight, `StubServer.in_flight`; reset by reset).
Pages of an Id range (`Id gt N and Id le M`) are served from one encoding like keyset pages, and mode
`ignore_upper_bound` plays a server that drops the `Id le M`.
"""

import json
import random
import threading

import pytest
import requests

from tests.stub_checks import CODE, TIMEOUT
from tests.stub_checks import row_ids as _ids
from tests.stub_checks import stub_get as _get
from tests.stub_checks import wait_for as _wait_for
from utils.gho_samples import FIELDS, generate_rows
from utils.gho_stub import DEFAULT_MODE, main
from utils.odata import apply_query


@pytest.fixture
def rows(stub):
    rows = generate_rows(CODE, 50)
    stub.set_rows(CODE, rows)
    return rows


def test_latency_is_off_by_default_and_every_data_answer_waits_it(stub, rows):
    assert DEFAULT_MODE["latency"] == 0.0 and stub.mode["latency"] == 0.0
    stub.set_mode(latency=0.2)
    assert len(_get(stub).json()["value"]) == 50
    _get(stub, "Indicator")  # not indicator data: no wait
    data, catalogue = stub.requests
    assert data["at"] - data["arrived"] >= 0.2
    assert catalogue["at"] - catalogue["arrived"] < 0.2


@pytest.mark.parametrize("bad", [-0.1, "1", True, float("nan"), float("inf"), None])
def test_latency_must_be_a_number_of_seconds(stub, bad):
    control = stub.base_url.replace("/api", "/_control")
    body = json.dumps({"latency": bad})  # NaN and Infinity as Python's json writes and reads them
    assert requests.post(f"{control}/mode", data=body, timeout=TIMEOUT).status_code == 400
    with pytest.raises(ValueError):
        stub.set_mode(latency=bad)


def test_latency_over_http_and_reset(stub, rows):
    control = stub.base_url.replace("/api", "/_control")
    assert requests.post(f"{control}/mode", json={"latency": 0.05}, timeout=TIMEOUT).json()["latency"] == 0.05
    assert requests.post(f"{control}/reset", json={}, timeout=TIMEOUT).status_code == 200
    assert stub.mode["latency"] == 0.0


def test_the_most_data_requests_in_flight_at_once_is_recorded_and_reset(stub, rows):
    control = stub.base_url.replace("/api", "/_control")
    assert stub.in_flight == {"in_flight": 0, "max_in_flight": 0}
    stub.set_mode(latency=2.0)
    threads = [threading.Thread(target=_get, args=(stub,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    _wait_for(lambda: stub.in_flight["in_flight"] == 4, timeout=10)
    for thread in threads:
        thread.join(timeout=30)
    _wait_for(lambda: stub.in_flight["in_flight"] == 0)  # a handler counts its request out after answering
    assert requests.get(f"{control}/in_flight", timeout=TIMEOUT).json() == {"in_flight": 0, "max_in_flight": 4}
    _get(stub, "Indicator")  # the catalogue is not indicator data
    stub.set_mode(latency=0.0)
    _get(stub)
    _wait_for(lambda: stub.in_flight["in_flight"] == 0)
    assert stub.in_flight == {"in_flight": 0, "max_in_flight": 4}
    stub.reset()
    assert stub.in_flight == {"in_flight": 0, "max_in_flight": 0}
    _get(stub)
    assert stub.in_flight["max_in_flight"] == 1


def test_latency_on_the_command_line(capsys):
    with pytest.raises(SystemExit):
        main(["--latency", "-1", "--port", "0"])
    assert "--latency" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--latency S" in capsys.readouterr().out


# --- Id ranges: `Id gt N and Id le M`, and a server that ignores the upper bound -------------------


@pytest.mark.parametrize("user", [None, "Dim1 eq 'SEX_FMLE'"])
def test_id_range_pages_match_apply_query_from_one_encoding(stub, user):
    rows = generate_rows(CODE, 3000)
    random.Random(5).shuffle(rows)
    stub.set_rows(CODE, rows)
    for lower, upper in ((0, 1000), (999, 2000), (2500, 2400), (-3, 10**15), (1000, 1000)):
        text = f"Id gt {lower} and Id le {upper}"
        text = text if user is None else f"({user}) and {text}"
        for extra in ({}, {"$top": "100"}, {"$top": "0"}, {"$skip": "7", "$top": "50"}):
            params = {"$orderby": "Id", "$filter": text, **extra}
            payload = _get(stub, **params, **{"$count": "true"}).json()
            assert payload["value"] == apply_query(rows, params, FIELDS), (text, extra)
            assert payload["@odata.count"] == len(apply_query(rows, {"$filter": text}, FIELDS))
    assert list(stub.state.encoded) == [(CODE, user, "Id")]  # every range served from the query without bounds


def test_ignore_upper_bound_mode(stub):
    rows = generate_rows(CODE, 300)
    stub.set_rows(CODE, rows)
    stub.set_mode(ignore_upper_bound=True)
    payload = _get(stub, **{"$orderby": "Id", "$filter": "Id gt 100 and Id le 200", "$count": "true"}).json()
    assert (payload["@odata.count"], _ids(payload)) == (200, list(range(101, 301)))
    stub.set_mode(ignore_keyset=True)  # both bounds ignored: the user filter alone
    payload = _get(stub, **{"$orderby": "Id", "$filter": "(Id le 250) and Id gt 100 and Id le 200"}).json()
    assert _ids(payload) == list(range(1, 251))
    stub.set_mode(ignore_upper_bound=False)
    payload = _get(stub, **{"$orderby": "Id", "$filter": "Id gt 100 and Id le 200", "$count": "true"}).json()
    assert (payload["@odata.count"], _ids(payload)) == (200, list(range(1, 201)))
