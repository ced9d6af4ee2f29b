"""Pages of one indicator side by side (GHO_PAGE_CONCURRENCY), bounded and polite, landing what paging in turn lands.

Against the stand-in made far (mode latency) and its record of the most requests it had in flight: four
ranges are fetched at once and the batch equals a sequential one row for row and page order, with no
request more; GHO_REQUESTS_IN_FLIGHT bounds two datasets extracted
side by side; a Retry-After pauses every thread; a kill -9 with ranges in flight resumes and lands every
row once; every server that ignores a bound, $orderby, $select or $top, and Ids whose spread the first page
misjudges, lose and repeat nothing; and
GHO_PAGE_CONCURRENCY=1 asks exactly what paging in turn always asked.
"""

import hashlib
import json
import threading
from urllib.parse import parse_qs

import pytest

from src.contracts.landing import MANIFEST, PROGRESS
from src.contracts.layout import Layout
from src.errors import ExtractError
from src.extract.phase import extract_dataset
from tests.api_checks import api_requests, paging_steps
from tests.boundary_checks import DATASET, INDICATOR
from tests.helpers import complete_batches, page_answer, page_rows, run_script
from tests.stub_checks import wait_for
from utils.gho_samples import generate_rows

ROWS, PAGE = 4500, 500  # the first page, then 8 pages in 4 ranges of 2


def _landed(settings, dataset=DATASET):
    """(manifest, every landed row in manifest order)."""
    batch = complete_batches(Layout(settings.data_dir), dataset)[-1]
    manifest = json.loads((batch / MANIFEST).read_text())
    rows = [row for page in manifest["pages"] for row in page_rows(batch / page["file"])]
    return manifest, rows


def _asked(stub, name) -> list:
    """The value of query parameter `name` in each API request (None where it was not asked)."""
    return [parse_qs(r["query"]).get(name, [None])[-1] for r in api_requests(stub)]


def _extract(make_settings, name, **overrides):
    settings = make_settings(data_dir=make_settings().data_dir.parent / name, page_size=PAGE, **overrides)
    result = extract_dataset(settings, settings.datasets[DATASET])
    return settings, result


def test_four_ranges_at_once_land_what_paging_in_turn_lands(make_settings, stub):
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, ROWS))
    sequential, _ = _extract(make_settings, "sequential", page_concurrency=1)
    paging_steps_of_sequential = paging_steps(stub)
    stub.reset()  # the request log and the most requests in flight
    stub.set_mode(latency=0.3)
    concurrent, result = _extract(make_settings, "concurrent", page_concurrency=4)
    assert stub.in_flight["max_in_flight"] == 4
    manifest, rows = _landed(concurrent)
    expected_manifest, expected_rows = _landed(sequential)
    assert rows == expected_rows  # the same rows in the same order
    assert [row["Id"] for row in rows] == list(range(1, ROWS + 1))
    assert (manifest["rows"], manifest["source_count"], manifest["complete_by"]) == (ROWS, ROWS, "count")
    assert (result.rows, result.source_count) == (ROWS, ROWS)
    firsts = [page["first_id"] for page in manifest["pages"]]
    assert firsts == sorted(firsts) and len(set(page["file"] for page in manifest["pages"])) == len(firsts)
    steps = paging_steps(stub)
    assert steps[0] == "first" and steps[-1] == "count" and steps.count("count") == 1
    assert len(steps) == len(paging_steps_of_sequential) == manifest["requests"]  # no request more than in turn
    again, _ = _extract(make_settings, "again", page_concurrency=4)
    # The same pages under the same names, whichever range answered first: a rerun's batch is "unchanged".
    assert [(p["file"], p["sha256"]) for p in _landed(again)[0]["pages"]] == [
        (p["file"], p["sha256"]) for p in manifest["pages"]
    ]


def test_concurrency_one_asks_exactly_what_paging_in_turn_asked(make_settings, stub):
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, 2200))
    settings, _ = _extract(make_settings, "one", page_concurrency=1)
    assert paging_steps(stub) == ["first", 500, 1000, 1500, 2000, "count"]
    assert "Id desc" not in _asked(stub, "$orderby") and not any(
        " le " in (text or "") for text in _asked(stub, "$filter")
    )
    batch = complete_batches(Layout(settings.data_dir), DATASET)[-1]
    assert set(json.loads((batch / PROGRESS).read_text())) == {
        "version", "attempt", "pages", "landed", "last_id", "count", "requests", "step", "query"
    }  # fmt: skip


def test_the_indicators_of_a_dataset_go_in_turn_each_in_ranges_side_by_side(make_settings, stub):
    codes = ["GEN_MA", "GEN_MB"]
    stub.set_rows(codes[0], generate_rows(codes[0], 4500))
    stub.set_rows(codes[1], generate_rows(codes[1], 2500))  # Ids 1..2500 again: Id order is per indicator
    config = {"both": {"indicators": codes}}
    sequential = make_settings(config, data_dir=make_settings().data_dir.parent / "in_turn", page_size=PAGE)
    extract_dataset(sequential, sequential.datasets["both"])
    stub.reset()
    stub.set_mode(latency=0.2)
    settings = make_settings(config, page_size=PAGE, page_concurrency=4)
    result = extract_dataset(settings, settings.datasets["both"])
    assert stub.in_flight["max_in_flight"] == 4
    manifest, rows = _landed(settings, "both")
    assert rows == _landed(sequential, "both")[1]
    assert [(r["IndicatorCode"], r["Id"]) for r in rows] == [(codes[0], n) for n in range(1, 4501)] + [
        (codes[1], n) for n in range(1, 2501)
    ]
    assert (result.rows, result.source_count, manifest["complete_by"]) == (7000, 7000, "count")
    assert [p["indicator"] for p in manifest["pages"]] == [codes[0]] * 9 + [codes[1]] * 5


@pytest.mark.parametrize("change", ["delete_landed", "delete_in_a_range", "insert_ahead"])
def test_a_source_that_changes_while_ranges_are_paged_is_paged_again(make_settings, stub, change):
    rows = generate_rows(INDICATOR, ROWS)
    stub.set_rows(INDICATOR, rows)
    extra = dict(generate_rows(INDICATOR, 1, seed=4)[0], Id=ROWS + 100, SpatialDim="NEW")

    def mutate(server):
        if change == "delete_landed":
            server.delete_rows(INDICATOR, [5])  # in the first page, landed already
        elif change == "delete_in_a_range":
            server.delete_rows(INDICATOR, [3000])
        else:
            server.insert_rows(INDICATOR, [extra])

    stub.after_requests(4, mutate)  # while the ranges are paged
    settings, result = _extract(make_settings, change, page_concurrency=4)
    expected = [
        r["Id"] for r in rows if r["Id"] not in {"delete_landed": {5}, "delete_in_a_range": {3000}}.get(change, ())
    ]
    expected += [extra["Id"]] if change == "insert_ahead" else []
    manifest, landed = _landed(settings)
    assert [row["Id"] for row in landed] == expected
    assert (manifest["restarts"], result.source_count) == (1, len(expected))


def test_requests_in_flight_bound_two_datasets_extracted_side_by_side(make_settings, stub):
    codes = {"first": "GEN_CA", "second": "GEN_CB"}
    for code in codes.values():
        stub.set_rows(code, generate_rows(code, 3000))
    settings = make_settings(
        {name: {"indicator": code} for name, code in codes.items()},
        page_size=300,
        page_concurrency=4,
        requests_in_flight=2,
    )
    stub.set_mode(latency=0.1)
    results = {}
    threads = [
        threading.Thread(target=lambda n=name: results.update({n: extract_dataset(settings, settings.datasets[n])}))
        for name in codes
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert stub.in_flight["max_in_flight"] == 2
    for name in codes:
        assert (results[name].rows, results[name].source_count) == (3000, 3000)
        assert [row["Id"] for row in _landed(settings, name)[1]] == list(range(1, 3001))


def test_a_retry_after_pauses_every_thread_not_only_the_one_that_got_it(make_settings, stub):
    rows = PAGE + 4 * 10 * PAGE  # 4 ranges of 10 pages: every range has pages left to ask during the pause
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, rows))
    stub.set_mode(latency=0.1)
    stub.add_fault("status", status=429, retry_after=2, after=4, path=INDICATOR)  # while ranges are in flight
    settings, result = _extract(make_settings, "polite", page_concurrency=4)
    [refused] = [r for r in stub.requests if r.get("fault") == "status"]
    assert refused["status"] == 429
    # Requests on the wire when the 429 went out may still arrive, and on two busy cores the stand-in may
    # read one late; none is sent after the client read it.
    during = [r for r in api_requests(stub) if refused["at"] + 0.5 < r["arrived"] < refused["at"] + 2.0]
    assert during == []
    assert len([r for r in api_requests(stub) if r["arrived"] >= refused["at"] + 2.0]) > 4
    assert [row["Id"] for row in _landed(settings)[1]] == list(range(1, rows + 1))


@pytest.mark.parametrize("point", ["extract.page_received@4", "extract.page_written@5", "extract.page_done@6"])
def test_a_kill_with_ranges_in_flight_resumes_and_lands_every_row_once(script_env, stub, tmp_path, point):
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, ROWS))
    stub.set_mode(latency=0.05)
    env = dict(script_env, GHO_PAGE_SIZE=str(PAGE), GHO_PAGE_CONCURRENCY="4")
    killed = run_script("start_extract.py", env=dict(env, GHO_ETL_CRASH_AT=point))
    assert killed.returncode == -9, killed.stderr
    layout = Layout(tmp_path / "data")
    [batch] = list(layout.landing(DATASET).iterdir())
    progress = json.loads((batch / PROGRESS).read_text())
    assert len(progress["ranges"]) == 4 and progress["step"] == {"kind": "ranges"}
    # Pages are written side by side: the state saved lists only pages already whole in place.
    assert progress["pages"]
    for page in progress["pages"]:
        assert hashlib.sha256(page_answer(batch / page["file"])).hexdigest() == page["sha256"], page["file"]
    wait_for(lambda: stub.in_flight["in_flight"] == 0)  # the killed run's last requests are answered
    stub.reset()  # the request log and the most requests in flight
    stub.set_mode(latency=0.05)
    run_script("start_extract.py", env=dict(env, GHO_PAGE_CONCURRENCY="2"), check=0)  # resumed with another
    assert stub.in_flight["max_in_flight"] <= 2
    [complete] = complete_batches(layout, DATASET)
    assert complete == batch  # resumed, not started over
    manifest = json.loads((batch / MANIFEST).read_text())
    ids = [row["Id"] for page in manifest["pages"] for row in page_rows(batch / page["file"])]
    assert ids == list(range(1, ROWS + 1))
    pages = [text for text, top in zip(_asked(stub, "$filter"), _asked(stub, "$top")) if top != "0"]
    assert all(text.startswith("Id gt ") for text in pages)  # no page asked again from the start


@pytest.mark.parametrize(
    "mode",
    [
        {"ignore_upper_bound": True},
        {"ignore_orderby": True},
        {"ignore_select": True},
        {"ignore_top": True},
        {"ignore_orderby": True, "ignore_top": True},
        {"max_page_size": 300},  # nextLink chains inside every range
        {"cap": 300},  # capped answers: every range's pages are shorter than asked
    ],
    ids=lambda mode: "+".join(f"{key}={value}" for key, value in mode.items()),
)
def test_a_server_that_ignores_part_of_a_query_loses_and_repeats_no_row(make_settings, stub, caplog, mode):
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, ROWS))
    stub.set_mode(**mode)
    settings, result = _extract(make_settings, "hostile", page_concurrency=4)
    manifest, rows = _landed(settings)
    assert [row["Id"] for row in rows] == list(range(1, ROWS + 1))
    assert (result.rows, result.source_count, manifest["complete_by"]) == (ROWS, ROWS, "count")
    if "ignore_upper_bound" in mode:
        [warning] = [r for r in caplog.records if "ignores the upper bound" in r.getMessage()]
        assert warning.levelname == "WARNING" and "starts over" in warning.getMessage()
        assert manifest["restarts"] == 1
        batch = complete_batches(Layout(settings.data_dir), DATASET)[-1]
        assert json.loads((batch / PROGRESS).read_text())["carry"] == {"page_concurrency": 1}


def test_a_server_that_ignores_the_lower_bound_of_a_range_fails_clearly_within_a_few_requests(make_settings, stub):
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, ROWS))
    stub.set_mode(ignore_keyset=True)
    settings = make_settings(page_size=PAGE, page_concurrency=4)
    with pytest.raises(ExtractError, match="sent rows from Id 1 again after rows up to Id"):
        extract_dataset(settings, settings.datasets[DATASET])
    assert len(api_requests(stub)) <= 1 + 4  # the first page, then one page of each range at most
    assert complete_batches(Layout(settings.data_dir), DATASET) == []


def _ids(kind):
    """Ids of 3,000 rows that the first page's density misjudges: the rest sparser, denser, or past a gap."""
    if kind == "sparser":
        return list(range(1, 501)) + [500 + 1000 * n for n in range(1, 2501)]
    if kind == "denser":
        return [1000 * n for n in range(1, 501)] + list(range(500_001, 502_501))
    return list(range(1, 1501)) + list(range(10**9, 10**9 + 1500))  # a gap of a billion Ids


@pytest.mark.parametrize("kind", ["sparser", "denser", "gap"])
def test_ids_that_the_first_page_misjudges_cost_speed_never_rows(make_settings, stub, kind):
    rows = generate_rows(INDICATOR, 3000)
    for row, new_id in zip(rows, _ids(kind)):
        row["Id"] = new_id
    stub.set_rows(INDICATOR, rows)
    settings, result = _extract(make_settings, kind, page_concurrency=4)
    manifest, landed = _landed(settings)
    assert [row["Id"] for row in landed] == _ids(kind)
    assert (result.rows, result.source_count, manifest["complete_by"]) == (3000, 3000, "count")
