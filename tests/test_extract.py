"""Extract against the stand-in over HTTP: paging, retries, clear failures, resume."""

import json
import time

import pytest

from src.errors import ExtractError, IndicatorNotFound
from src.contracts.landing import MANIFEST, PROGRESS
from src.extract.phase import extract_dataset
from tests.helpers import complete_batches
from src.errors import TransientAnswer
from src.sources.gho_odata.answer import parse_answer
from src.contracts.layout import Layout
from tests.api_checks import api_requests
from tests.api_checks import paging_steps
from tests.helpers import page_rows, requires_samples, run_script
from utils.gho_samples import generate_rows


def _dataset(settings, name="life_expectancy_at_birth"):
    return settings.datasets[name]


def _landing_rows(batch_dir):
    manifest = json.loads((batch_dir / MANIFEST).read_text())
    rows = []
    for page in manifest["pages"]:
        rows.extend(page_rows(batch_dir / page["file"]))
    return manifest, rows


def test_pages_by_id_with_top_count_and_stable_order(make_settings, stub):
    stub.set_rows("WHOSIS_000001", generate_rows("WHOSIS_000001", 2500))
    settings = make_settings(page_size=1000)
    result = extract_dataset(settings, _dataset(settings))
    assert (result.pages, result.rows, result.source_count) == (3, 2500, 2500)
    queries = [r["query"] for r in api_requests(stub)]
    assert all("%24orderby=Id" in q and "%24top=1000" in q and "%24count=true" in q for q in queries[:3])
    assert paging_steps(stub) == ["first", 1000, 2000, "count"]  # the last: the count must still be 2500
    manifest, rows = _landing_rows(complete_batches(Layout(settings.data_dir), "life_expectancy_at_birth")[0])
    assert manifest["rows"] == 2500
    assert sorted(r["Id"] for r in rows) == list(range(1, 2501))


def test_exact_multiple_of_page_size_ends_on_the_count(make_settings, stub):
    stub.set_rows("WHOSIS_000001", generate_rows("WHOSIS_000001", 2000))
    settings = make_settings(page_size=1000)
    result = extract_dataset(settings, _dataset(settings))
    assert (result.pages, result.rows) == (2, 2000)
    assert paging_steps(stub) == ["first", 1000, "count"]


def test_follows_odata_next_link(make_settings, stub):
    stub.set_rows("WHOSIS_000001", generate_rows("WHOSIS_000001", 2500))
    stub.set_max_page_size(700)
    settings = make_settings(page_size=100000)
    result = extract_dataset(settings, _dataset(settings))
    assert result.rows == 2500
    assert len(api_requests(stub)) == 4 + 1  # four linked pages of one request, then the count
    _, rows = _landing_rows(complete_batches(Layout(settings.data_dir), "life_expectancy_at_birth")[0])
    assert len({r["Id"] for r in rows}) == 2500


def test_filter_is_sent_and_applied(make_settings, stub):
    stub.set_rows("WHOSIS_000001", generate_rows("WHOSIS_000001", 900))
    datasets = {"somalia": {"indicator": "WHOSIS_000001", "filter": "Dim1 eq 'SEX_FMLE' and TimeDim ge 2000"}}
    settings = make_settings(datasets)
    result = extract_dataset(settings, settings.datasets["somalia"])
    _, rows = _landing_rows(complete_batches(Layout(settings.data_dir), "somalia")[0])
    assert result.rows == len(rows) > 0
    assert all(r["Dim1"] == "SEX_FMLE" and r["TimeDim"] >= 2000 for r in rows)


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "status", "status": 500},
        {"kind": "status", "status": 502},
        {"kind": "status", "status": 503},
        {"kind": "reset"},
        {"kind": "truncate"},
        {"kind": "empty"},
        {"kind": "html"},
    ],
)
def test_transient_faults_are_retried(make_settings, stub, fault):
    stub.set_rows("WHOSIS_000001", generate_rows("WHOSIS_000001", 300))
    stub.add_fault(times=2, **fault)
    settings = make_settings()
    result = extract_dataset(settings, _dataset(settings))
    assert result.rows == 300
    assert paging_steps(stub) == ["first", "first", "first", "count"]  # two faults, the good answer, the count


def test_429_honours_retry_after(make_settings, stub):
    stub.set_rows("WHOSIS_000001", generate_rows("WHOSIS_000001", 10))
    stub.add_fault("status", status=429, retry_after="1")
    settings = make_settings()
    started = time.monotonic()
    extract_dataset(settings, _dataset(settings))
    assert time.monotonic() - started >= 1.0
    assert paging_steps(stub) == ["first", "first", "count"]


def test_timeout_is_retried(make_settings, stub):
    stub.set_rows("WHOSIS_000001", generate_rows("WHOSIS_000001", 10))
    stub.add_fault("slow", seconds=2)
    settings = make_settings(http_timeout=0.5)
    assert extract_dataset(settings, _dataset(settings)).rows == 10


def test_persistent_failure_gives_up_after_bounded_attempts(make_settings, stub):
    stub.add_fault("status", status=503, times=100)
    settings = make_settings(max_attempts=3)
    with pytest.raises(ExtractError) as caught:
        extract_dataset(settings, _dataset(settings))
    assert str(caught.value) == "indicator WHOSIS_000001: giving up after 3 attempts: HTTP 503 Service Unavailable"
    assert len(api_requests(stub)) == 3


def test_unknown_indicator_fails_at_once(make_settings, stub):
    settings = make_settings({"ghost": {"indicator": "NOT_A_CODE"}})
    with pytest.raises(IndicatorNotFound, match="indicator NOT_A_CODE not found"):
        extract_dataset(settings, settings.datasets["ghost"])
    assert len(api_requests(stub)) == 1


def test_bad_filter_fails_at_once(make_settings, stub):
    settings = make_settings({"bad": {"indicator": "WHOSIS_000001", "filter": "NoSuchField eq 1"}})
    with pytest.raises(ExtractError, match=r"HTTP 400.*NoSuchField"):
        extract_dataset(settings, settings.datasets["bad"])
    assert len(api_requests(stub)) == 1


def test_interrupted_extract_resumes_from_last_complete_page(make_settings, stub):
    stub.set_rows("WHOSIS_000001", generate_rows("WHOSIS_000001", 3500))
    settings = make_settings(page_size=1000, max_attempts=2)
    # Two pages get through, then the API fails for good: the run stops half-way.
    stub.add_fault("status", status=503, times=100, after=2)
    with pytest.raises(ExtractError):
        extract_dataset(settings, _dataset(settings))
    layout = Layout(settings.data_dir)
    assert complete_batches(layout, "life_expectancy_at_birth") == []
    batch = next(layout.landing("life_expectancy_at_birth").iterdir())
    progress = json.loads((batch / PROGRESS).read_text())
    assert [p["file"] for p in progress["pages"]] == ["page-00000.json.lz4", "page-00001.json.lz4"]

    stub.clear_faults()
    stub.clear_requests()
    result = extract_dataset(settings, _dataset(settings))
    assert result.resumed and result.batch_id == batch.name
    assert paging_steps(stub) == [2000, 3000, "count"]
    _, rows = _landing_rows(batch)
    assert sorted(r["Id"] for r in rows) == list(range(1, 3501))


def test_changed_request_discards_incomplete_batch(make_settings, stub):
    stub.set_rows("WHOSIS_000001", generate_rows("WHOSIS_000001", 3000))
    settings = make_settings(page_size=1000, max_attempts=1)
    stub.add_fault("status", status=503, times=100, after=1)
    with pytest.raises(ExtractError):
        extract_dataset(settings, _dataset(settings))
    stub.clear_faults()
    resized = make_settings(page_size=2000)
    result = extract_dataset(resized, _dataset(resized))
    assert not result.resumed and result.rows == 3000
    assert len(list(Layout(settings.data_dir).landing("life_expectancy_at_birth").iterdir())) == 1


def test_files_that_are_not_batches_are_left_alone_in_landing(make_settings, stub):
    """Only folders are batches: a note a user leaves in landing survives every extract."""
    stub.set_rows("WHOSIS_000001", generate_rows("WHOSIS_000001", 300))
    settings = make_settings(page_size=100)
    landing = Layout(settings.data_dir).landing("life_expectancy_at_birth")
    landing.mkdir(parents=True)
    (landing / "README.txt").write_text("kept by hand\n")
    assert extract_dataset(settings, _dataset(settings)).rows == 300
    assert extract_dataset(settings, _dataset(settings)).rows == 300
    assert (landing / "README.txt").read_text() == "kept by hand\n"
    assert len(complete_batches(Layout(settings.data_dir), "life_expectancy_at_birth")) == 2


@requires_samples
def test_real_sample_extract_script(script_env, tmp_path):
    result = run_script("start_extract.py", env=script_env, check=0)
    assert result.stdout.startswith("extract life_expectancy_at_birth: 12936 rows")
    layout = Layout(tmp_path / "data")
    assert len(complete_batches(layout, "life_expectancy_at_birth")) == 1


def test_unreachable_api_is_one_clear_line(script_env):
    env = dict(script_env, GHO_API_BASE_URL="http://127.0.0.1:9/api", GHO_MAX_ATTEMPTS="2")
    result = run_script("start_extract.py", env=env)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith("error: extract life_expectancy_at_birth: FAILED after ")
    assert errors[0].endswith("indicator WHOSIS_000001: giving up after 2 attempts: connection failed: ConnectionError")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("workers", [1, 3])
def test_datasets_are_extracted_side_by_side_up_to_the_worker_limit(make_settings, stub, workers):
    from src.runner import Runner

    codes = ["GEN_A", "GEN_B", "GEN_C"]
    for code in codes:
        stub.set_rows(code, generate_rows(code, 100))
        stub.add_fault("slow", seconds=0.6, path=code)
    settings = make_settings({c.lower(): {"indicator": c} for c in codes}, extract_workers=workers)
    outcomes = Runner(settings, database=None).run_phase_for_all("extract", list(settings.datasets.values()))
    assert [o.ok and o.rows_written for o in outcomes] == [100, 100, 100]
    first_requests = {}
    for request in api_requests(stub):  # each dataset's first request (the slow one), not its final count
        first_requests.setdefault(request["path"], request["at"])
    starts = sorted(first_requests.values())
    spread = starts[-1] - starts[0]
    if workers == 1:
        assert spread >= 1.2  # one after the other
    else:
        assert spread < 0.5  # all three asked at once


@pytest.mark.parametrize(
    "body, count, next_link",
    [
        (b'{"value": []}', 0, None),
        (b'{\n  "value": [\n    {"Id": 1},\n    {"Id": 2}\n  ]\n}', 2, None),  # pretty-printed
        (b'{"value": [{"Id": 1}], "@odata.nextLink": "http://h/api/X?$skip=1"}', 1, "http://h/api/X?$skip=1"),
        ('{"value": [{"ParentLocation": "Côte d’Ivoire 漢字"}]}'.encode(), 1, None),
        (b'{"value": [{"Comments": "lone \\ud800 surrogate"}]}', 1, None),  # GHO text may hold one
        (b'{"value": [1, null, "not a row"]}', 3, None),  # counted here, rejected by transform
    ],
)
def test_page_validation_accepts_every_json_page(body, count, next_link):
    page = parse_answer(body)
    assert (page.raw, page.count, page.next_link) == (body, count, next_link)


@pytest.mark.parametrize(
    "body, reason",
    [
        (b'{"value": [{"Id": 1}', "not valid JSON"),  # truncated
        (b'{"value": [{"Id": 1,}]}', "not valid JSON"),
        (b'{"value": []} trailing', "not valid JSON"),
        (b'{"value": [{"Comments": "\xff\xfe"}]}', "not valid JSON"),  # not UTF-8
        (b"<html><body>Service Unavailable</body></html>", "not valid JSON"),
        (b'{"value": {"Id": 1}}', "no 'value' list"),
        (b"[]", "no 'value' list"),
        (b'{"value": [], "@odata.nextLink": 5}', "not a link"),
    ],
)
def test_page_validation_refuses_what_is_not_a_page(body, reason):
    with pytest.raises(TransientAnswer) as refused:
        parse_answer(body)
    assert reason in refused.value.reason


@pytest.mark.parametrize(
    "body, problem",
    [
        (b'{"value": [{"Id": 1}, {"Id": 3}, {"Id": 7}]}', None),
        (b'{"value": [{"Id": 1}, {"Value": "no Id"}]}', "row 2 of a page has no integer Id"),
        (b'{"value": [{"Id": 1}, {"Id": "2"}]}', "row 2 of a page has no integer Id"),
        (b'{"value": [{"Id": true}]}', "row 1 of a page has no integer Id"),
        (b'{"value": [{"Id": 1.5}]}', "row 1 of a page has no integer Id"),
        (b'{"value": [{"Id": 1}, 7]}', "row 2 of a page has no integer Id"),
        (b'{"value": [{"Id": 5}, {"Id": 4}]}', "not in ascending Id order (Id 4 after 5)"),
        (b'{"value": [{"Id": 5}, {"Id": 5}]}', "not in ascending Id order (Id 5 after 5)"),
        (b'{"value": [{"Id": 99999999999999999999999}, {"Id": 1}]}', "not in ascending Id order"),
    ],
)
def test_page_validation_says_why_rows_cannot_be_paged_by_id(body, problem):
    page = parse_answer(body)
    if problem is None:
        assert page.ids_problem is None and (page.first_id, page.last_id) == (1, 7)
    else:
        assert problem in page.ids_problem


def test_rows_out_of_id_order_fail_the_extract_clearly(make_settings, stub):
    stub.add_fault("error_body", status=200, body='{"value": [{"Id": 2}, {"Id": 1}]}', path="WHOSIS_000001")
    settings = make_settings()
    with pytest.raises(ExtractError, match=r"cannot be paged by Id: its rows are not in ascending Id order"):
        extract_dataset(settings, _dataset(settings))
