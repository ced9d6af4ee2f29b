"""API faults through the stand-in, end to end: transient ones end in a correct load,
persistent ones in one clear error that keeps every earlier phase's data.

Request counts are asserted exactly: retries are bounded, nothing storms, and
Retry-After is waited out.
"""

import re

import pytest

from src.extract.phase import extract_dataset
from src.contracts.layout import Layout
from src.transform.phase import transform_dataset
from tests.api_checks import api_requests
from tests.api_checks import paging_steps
from tests.helpers import run_script, write_dataset_config
from tests.pipeline_checks import leftovers, run_pipeline, scalar
from utils.gho_samples import generate_rows

DATASET = "life_expectancy_at_birth"
INDICATOR = "WHOSIS_000001"
ROWS = 1200
PAGE_SIZE = 500  # three pages


def _loaded(url):
    return scalar(url, f"SELECT count(*) FROM {DATASET}")


def _loaded_values(url):
    return scalar(url, f"SELECT sum(numeric_value)::numeric(20,5) FROM {DATASET}")


TRANSIENT = [
    pytest.param({"kind": "status", "status": 500}, id="500"),
    pytest.param({"kind": "status", "status": 502}, id="502"),
    pytest.param({"kind": "status", "status": 503}, id="503"),
    pytest.param({"kind": "status", "status": 429, "retry_after": "1"}, id="429-retry-after"),
    pytest.param({"kind": "reset"}, id="reset-mid-body"),
    pytest.param({"kind": "truncate"}, id="truncated-body"),
    pytest.param({"kind": "empty"}, id="empty-200"),
    pytest.param({"kind": "html"}, id="html-200"),
    pytest.param({"kind": "slow", "seconds": 1.0}, id="slower-than-timeout"),
    pytest.param({"kind": "stall", "seconds": 1.0}, id="body-stalls"),
]


@pytest.mark.parametrize("fault", TRANSIENT)
def test_transient_fault_on_a_middle_page_ends_in_a_correct_load(make_settings, stub, database_url, fault):
    rows = generate_rows(INDICATOR, ROWS)
    stub.set_rows(INDICATOR, rows)
    stub.add_fault(times=2, after=1, path=INDICATOR, **fault)  # page 2 fails twice, then answers
    settings = make_settings(page_size=PAGE_SIZE, http_timeout=0.5, max_attempts=4)
    outcomes = run_pipeline(settings)
    assert [o.ok for o in outcomes] == [True, True, True]
    requests = api_requests(stub)
    assert len(requests) == 3 + 2 + 1  # three pages, two of them repeats of page 2, the final count
    assert [r.get("fault") for r in requests] == [None, fault["kind"], fault["kind"], None, None, None]
    assert paging_steps(stub) == ["first", 500, 500, 500, 1000, "count"]
    if fault.get("retry_after"):
        gaps = [later["at"] - earlier["at"] for earlier, later in zip(requests[1:3], requests[2:4])]
        assert min(gaps) >= 0.95, f"Retry-After: 1 not honoured: gaps {gaps}"
    assert _loaded(database_url) == ROWS
    assert float(_loaded_values(database_url)) == pytest.approx(sum(r["NumericValue"] for r in rows), abs=1e-3)
    assert leftovers(settings.data_dir) == []


PERSISTENT = [
    pytest.param({"kind": "status", "status": 503}, "giving up after 3 attempts: HTTP 503 Service Unavailable", 3),
    pytest.param({"kind": "status", "status": 500}, "giving up after 3 attempts: HTTP 500 Internal Server Error", 3),
    pytest.param({"kind": "status", "status": 429, "retry_after": "0.2"}, "giving up after 3 attempts: 429", 3),
    pytest.param({"kind": "reset"}, "giving up after 3 attempts: connection", 3),
    pytest.param({"kind": "truncate"}, "giving up after 3 attempts: response is not valid JSON", 3),
    pytest.param({"kind": "empty"}, "giving up after 3 attempts: empty response body", 3),
    pytest.param({"kind": "html"}, "giving up after 3 attempts: response is not valid JSON", 3),
    pytest.param({"kind": "slow", "seconds": 1.0}, "giving up after 3 attempts: no complete answer within 0.3s", 3),
]


def _pending_batches(settings):
    layout = Layout(settings.data_dir)
    return sorted(p.name for p in layout.staging(DATASET).glob("*.parquet"))


@pytest.mark.parametrize("fault,message,requests", PERSISTENT)
def test_persistent_fault_fails_clearly_and_keeps_earlier_data(
    make_settings, stub, database_url, fault, message, requests
):
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, ROWS))
    settings = make_settings(page_size=PAGE_SIZE, http_timeout=0.3, max_attempts=3)
    yesterday = run_pipeline(settings)
    assert all(o.ok for o in yesterday)  # yesterday's data, loaded
    dataset = settings.datasets[DATASET]
    extract_dataset(settings, dataset)
    transform_dataset(settings, dataset)  # a batch staged, not yet loaded
    pending = _pending_batches(settings)
    stub.clear_requests()

    stub.add_fault(times=1000, path=INDICATOR, **fault)
    [outcome] = run_pipeline(settings)
    assert outcome.phase == "extract" and not outcome.ok
    assert outcome.error.startswith(f"indicator {INDICATOR}: {message}")
    assert len(api_requests(stub)) == requests
    assert _pending_batches(settings) == pending
    assert _loaded(database_url) == ROWS

    stub.clear_faults()
    today = run_pipeline(settings)
    assert all(o.ok for o in today)
    assert _loaded(database_url) == ROWS
    # three batches loaded once each (skipped identical ones keep their ledger row for an hour)
    assert sum(o.batches for o in yesterday + today if o.phase == "load") == 3
    assert scalar(database_url, "SELECT count(*) FROM etl_batches") == 3
    assert leftovers(settings.data_dir) == []


@pytest.mark.parametrize(
    "config,message",
    [
        ({"ghost": {"indicator": "NOT_A_CODE"}}, "indicator NOT_A_CODE not found (HTTP 404"),
        (
            {"bad": {"indicator": INDICATOR, "filter": "NoSuchField eq 1"}},
            f"indicator {INDICATOR}: the API refused the request (HTTP 400)",
        ),
    ],
    ids=["404-unknown-indicator", "400-bad-filter"],
)
def test_refusals_fail_at_once_through_the_script(script_env, stub, tmp_path, config, message):
    env = dict(script_env, DATASET_CONFIG_FILE=str(write_dataset_config(tmp_path, config)))
    result = run_script("start_scheduler.py", "--once", env=env)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(api_requests(stub)) == 1  # no retry of what retrying cannot fix


def test_persistent_fault_through_the_script_is_one_line(script_env, stub):
    stub.add_fault("status", status=503, times=1000)
    env = dict(script_env, GHO_MAX_ATTEMPTS="2")
    result = run_script("start_extract.py", env=env)
    assert result.returncode == 1
    assert re.fullmatch(
        rf"error: extract {DATASET}: FAILED after [0-9.]+s: "
        rf"indicator {INDICATOR}: giving up after 2 attempts: HTTP 503 Service Unavailable",
        result.stderr.strip().splitlines()[-1],
    )
    assert "Traceback" not in result.stderr
    assert len(api_requests(stub)) == 2
