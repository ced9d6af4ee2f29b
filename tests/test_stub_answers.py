"""What the GHO stand-in answers about one known set of rows, over real HTTP on 127.0.0.1.

Every test here asks about the same 300 generated rows, served out of Id order
(the `rows` fixture): `$count` (where it goes, what it counts, when it is
sent), the filters that do not take the keyset fast path, each mode (cap,
ignore_skip, ignore_keyset, no_count, max_page_size, cycle_links,
next_link_base, link_style) and its control endpoint, and the faults that
shape one answer (drip, redirect, empty_value) with their after, times and
path options.
"""

import json
import random
import time
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from tests.stub_checks import CODE, TIMEOUT
from tests.stub_checks import get_stream as _get_stream
from tests.stub_checks import last_fault_entry as _fault_entry
from tests.stub_checks import read_until_end as _read_until_end
from tests.stub_checks import row_ids as _ids
from tests.stub_checks import stub_get as _get
from tests.stub_checks import wait_for as _wait_for
from utils.gho_samples import FIELDS, generate_rows
from utils.gho_stub import DEFAULT_MODE
from utils.odata import apply_query


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


# --- faults that shape one answer -------------------------------------------------------


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


def test_redirect(stub, rows):
    stub.add_fault("redirect", location="http://127.0.0.1:9/api/elsewhere")
    answer = requests.get(f"{stub.base_url}/{CODE}", allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code == 302 and answer.headers["Location"] == "http://127.0.0.1:9/api/elsewhere"
    assert answer.content == b""
    stub.add_fault("redirect", status=307)
    answer = requests.get(f"{stub.base_url}/{CODE}", params={"$top": "1"}, allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code == 307 and answer.headers["Location"] == answer.url  # a loop


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


def test_a_few_ordered_rows_with_select_are_what_a_full_sort_gives_and_follow_new_rows(stub):
    """The change probe's question is answered by a top-N pick, kept until the rows change: the same rows, in
    the same order (ties keep the rows' order), the count of every matching row, and never a stale answer."""
    rows = [
        {"Id": i, "Date": f"2024-0{1 + i % 3}-01T00:00:00Z", "Dim1": "SEX_FMLE" if i % 2 else "SEX_MLE"}
        for i in range(1, 301)
    ]
    stub.set_rows("GEN_PICK", rows)
    for orderby in ("Date desc,Id desc", "Date desc", "Date asc", "Date asc,Dim1 desc"):
        for skip, top in ((0, 1), (0, 5), (3, 4)):
            query = {"$orderby": orderby, "$select": "Date,Id", "$count": "true", "$top": str(top), "$skip": str(skip)}
            answer = _get(stub, "GEN_PICK", **query).json()
            whole = _get(stub, "GEN_PICK", **{"$orderby": orderby, "$select": "Date,Id"}).json()["value"]
            assert answer["value"] == whole[skip : skip + top], (orderby, skip, top)
            assert answer["@odata.count"] == 300
    probe = {"$orderby": "Date desc,Id desc", "$select": "Date,Id", "$top": "1", "$count": "true"}
    assert _get(stub, "GEN_PICK", **probe).json()["value"] == [{"Date": "2024-03-01T00:00:00Z", "Id": 299}]
    stub.set_rows("GEN_PICK", rows + [{"Id": 301, "Date": "2025-01-01T00:00:00Z", "Dim1": "SEX_MLE"}])
    answer = _get(stub, "GEN_PICK", **probe).json()
    assert (answer["value"], answer["@odata.count"]) == ([{"Date": "2025-01-01T00:00:00Z", "Id": 301}], 301)
    filtered = _get(stub, "GEN_PICK", **dict(probe, **{"$filter": "Dim1 eq 'SEX_FMLE'"})).json()
    assert (filtered["value"], filtered["@odata.count"]) == ([{"Date": "2024-03-01T00:00:00Z", "Id": 299}], 150)
