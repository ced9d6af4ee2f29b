"""The stand-in's paging without modes, over real HTTP on 127.0.0.1.

By default everything comes in one answer; `Id gt N` pages (with or without a
user filter, $top and $skip) equal what utils.odata.apply_query computes and
share one cached encoding, Ids that are not all numbers included; and rows
deleted or inserted after the n-th data request (in process or over
/_control/after_requests) show in the very next page.
"""

import random

import pytest
import requests

from tests.stub_checks import CODE, TIMEOUT
from tests.stub_checks import row_ids as _ids
from tests.stub_checks import stub_get as _get
from utils.gho_samples import FIELDS, generate_rows
from utils.gho_stub import DEFAULT_MODE
from utils.odata import apply_query


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


@pytest.mark.parametrize("user", [None, "Dim1 eq 'SEX_FMLE'"])
def test_keyset_pages_of_an_id_range_match_apply_query(stub, user):
    """`Id gt N and Id le M` (a range of concurrent pages) is served from the query's one encoding, cut at M."""
    rows = generate_rows(CODE, 3000)
    random.Random(11).shuffle(rows)
    stub.set_rows(CODE, rows)
    for bound, upper in ((-5, 0), (0, 1), (17, 1500), (1500, 1501), (2999, 3000), (100, 10**15), (2000, 1000)):
        keyset = f"Id gt {bound} and Id le {upper}"
        text = keyset if user is None else f"({user}) and {keyset}"
        for extra in ({}, {"$top": "100"}, {"$skip": "7", "$top": "50"}, {"$skip": "5000"}):
            params = {"$orderby": "Id", "$filter": text, **extra}
            payload = _get(stub, **params, **{"$count": "true"}).json()
            assert payload["value"] == apply_query(rows, params, FIELDS), (text, extra)
            assert payload["@odata.count"] == len(apply_query(rows, {"$filter": text}, FIELDS)), (text, extra)
    assert list(stub.state.encoded) == [(CODE, user, "Id")]


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


def test_keyset_with_ids_that_are_not_all_numbers(stub):
    rows = generate_rows(CODE, 20)
    rows[3]["Id"], rows[5]["Id"] = None, "x"
    stub.set_rows(CODE, rows)
    params = {"$orderby": "Id", "$filter": "(Dim1 ne 'SEX_BTSX') and Id gt 4"}
    assert _get(stub, **params).json()["value"] == apply_query(rows, params, FIELDS)


# --- rows that change between requests --------------------------------------------------


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


def test_encodings_of_several_indicators_are_kept_within_a_bound(stub, monkeypatch):
    """Indicators prepared at start stay encoded while they fit (a run over many is not timed encoding them);
    past the bound the oldest go first, and the newest stays even alone above it."""
    from utils.stub import indicator_rows

    codes = [f"KEEP_{n}" for n in range(3)]
    for code in codes:
        stub.set_rows(code, generate_rows(code, 100))
        stub.prepare(code)
    assert [query[0] for query in stub.state.encoded] == codes
    first = stub.state.encoded[(codes[0], None, "Id")]
    assert _ids(_get(stub, codes[0], **{"$orderby": "Id", "$filter": "Id gt 50"}).json()) == list(range(51, 101))
    assert stub.state.encoded[(codes[0], None, "Id")] is first  # served from the kept encoding
    monkeypatch.setattr(indicator_rows, "MAX_ENCODED_ROWS", 250)
    stub.set_rows("KEEP_BIG", generate_rows("KEEP_BIG", 120))
    stub.prepare("KEEP_BIG")
    assert [query[0] for query in stub.state.encoded] == [codes[2], "KEEP_BIG"]
    stub.set_rows("KEEP_HUGE", generate_rows("KEEP_HUGE", 300))
    stub.prepare("KEEP_HUGE")
    assert [query[0] for query in stub.state.encoded] == ["KEEP_HUGE"]
