"""The API boundary against servers that drip, flood, redirect and send hostile text.

Each test makes the stand-in (utils/gho_stub.py), or a raw socket server of
our own, hold an answer open, flood it, redirect or link elsewhere, or answer
with control characters, and checks that the run ends in bounded time and
memory, never talks to another origin, and fails with one clear, printable
line naming the dataset and the cause; and that the summary line says what
the source counted.
"""

import json
import sys
import time

import pytest

from src.errors import ExtractError
from src.extract.phase import extract_dataset
from tests.api_checks import api_requests
from tests.boundary_checks import DATASET, INDICATOR
from tests.boundary_checks import one_error_line as _one_error_line
from tests.helpers import PROJECT_ROOT, run_script, write_dataset_config
from tests.odata_servers import endless_gzip_name, endless_trailers, header_drip, raw_server
from tests.pipeline_checks import scalar
from utils.gho_samples import generate_rows
from utils.gho_stub import StubServer
from utils.measure import run_measured

# --- held or flooded: time, memory and origin are bounded --------------------------------------


def test_a_dripping_answer_is_cut_at_the_deadline(make_settings, stub):
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, 200))
    stub.add_fault("drip", seconds=0.05, limit_s=20, times=10, path=INDICATOR)
    settings = make_settings(http_timeout=1.0, max_attempts=2)
    started = time.monotonic()
    with pytest.raises(ExtractError, match="giving up after 2 attempts: no complete answer within 1s"):
        extract_dataset(settings, settings.datasets[DATASET])
    assert time.monotonic() - started < 4.0


@pytest.mark.parametrize(
    "write", [header_drip, endless_trailers, endless_gzip_name], ids=["headers", "chunked-trailers", "gzip-name"]
)
def test_an_answer_held_open_where_no_read_times_out_is_cut_at_the_deadline(make_settings, write):
    """Bytes keep coming inside urllib3 and http.client, where no check of ours runs between reads."""
    with raw_server(write, run_for=20) as base_url:
        settings = make_settings(api_base_url=base_url, http_timeout=1.0, max_attempts=2)
        started = time.monotonic()
        with pytest.raises(ExtractError, match="giving up after 2 attempts: no complete answer within 1s"):
            extract_dataset(settings, settings.datasets[DATASET])
        assert time.monotonic() - started < 4.0


def test_the_scheduler_stops_without_force_while_the_api_drips(config_file_env, stub, tmp_path):
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, 200))
    stub.add_fault("drip", seconds=0.2, limit_s=60, times=100, path=INDICATOR)
    env = dict(config_file_env, GHO_HTTP_TIMEOUT="2", GHO_MAX_ATTEMPTS="2")
    run_script("start_scheduler.py", "--run-now", env=env, check=0)
    try:
        deadline = time.monotonic() + 20
        while not api_requests(stub) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert api_requests(stub), "the scheduler never asked the API"
        started = time.monotonic()
        stopped = run_script("stop_scheduler.py", "--timeout", "20", env=env)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert time.monotonic() - started < 15
    finally:
        run_script("stop_scheduler.py", "--timeout", "5", "--force", env=env)


@pytest.fixture
def config_file_env(script_env, tmp_path):
    config = {DATASET: {"indicator": INDICATOR, "schedule": "every day at 02:00"}}
    return dict(script_env, DATASET_CONFIG_FILE=str(write_dataset_config(tmp_path, config)))


def _extract_measured(env):
    """start_extract.py in a process of its own: (result, its peak RSS in MB)."""
    return run_measured([sys.executable, str(PROJECT_ROOT / "scripts" / "start_extract.py")], env, PROJECT_ROOT, 120)


@pytest.mark.parametrize(
    "fault, how",
    [
        pytest.param({"kind": "endless"}, "more bytes than that arrived", id="endless-body"),
        pytest.param(
            {"kind": "gzip_bomb", "inflated": 512 * 1024 * 1024},
            "it inflates past that as it is decoded",
            id="gzip-bomb-512MB",
        ),
    ],
)
def test_a_flood_is_refused_in_bounded_memory(script_env, stub, fault, how):
    env = dict(script_env, GHO_MAX_PAGE_BYTES=str(8 * 1024 * 1024), GHO_MAX_ATTEMPTS="2")
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, 1200))
    normal, normal_mb = _extract_measured(env)  # the same process on an ordinary answer
    assert normal.returncode == 0, normal.stderr
    stub.clear_requests()
    stub.add_fault(times=100, path=INDICATOR, **fault)
    started = time.monotonic()
    result, peak_mb = _extract_measured(env)
    _one_error_line(result, DATASET, f"exceeds GHO_MAX_PAGE_BYTES=8388608 bytes ({how})")
    # The body is held at most once, plus one joined copy: 8 MiB each, and far from 512 MiB or more.
    assert peak_mb < normal_mb + 48, f"extract peaked at {peak_mb:.0f} MB, {normal_mb:.0f} MB on an ordinary answer"
    assert time.monotonic() - started < 30
    assert len(api_requests(stub)) == 1  # too large is not worth asking again


def test_an_answer_that_declares_too_many_bytes_is_refused_before_it_is_read(make_settings, stub):
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, 1200))  # about 700 KB as one answer
    settings = make_settings(max_page_bytes=65536)
    with pytest.raises(
        ExtractError, match=r"exceeds GHO_MAX_PAGE_BYTES=65536 bytes \(its Content-Length says \d+ bytes\)"
    ):
        extract_dataset(settings, settings.datasets[DATASET])
    assert len(api_requests(stub)) == 1


def test_the_default_body_limit_follows_the_page_size(make_settings):
    assert make_settings(page_size=10000).page_bytes_limit == 10000 * 4096
    assert make_settings(page_size=10).page_bytes_limit == 16 * 1024 * 1024
    assert make_settings(max_page_bytes=1 << 20).page_bytes_limit == 1 << 20


@pytest.fixture
def elsewhere():
    """A second stand-in on another port: another origin, serving other rows."""
    with StubServer() as server:
        server.set_rows(INDICATOR, generate_rows(INDICATOR, 50, seed=9))
        yield server


def test_a_redirect_to_another_origin_is_refused(make_settings, stub, elsewhere):
    stub.add_fault("redirect", location=f"{elsewhere.base_url}/{INDICATOR}?$top=10", times=10, path=INDICATOR)
    settings = make_settings()
    with pytest.raises(ExtractError, match=r"HTTP 302 redirect points outside http://127\.0\.0\.1:\d+ .*refusing"):
        extract_dataset(settings, settings.datasets[DATASET])
    assert elsewhere.requests == []


def test_a_redirect_within_the_api_is_followed(make_settings, stub):
    rows = generate_rows(INDICATOR, 300)
    stub.set_rows(INDICATOR, rows)
    stub.set_rows("MOVED", rows)
    stub.add_fault("redirect", location=f"{stub.base_url}/MOVED?$top=5000&$orderby=Id&$count=true", path=INDICATOR)
    settings = make_settings()
    result = extract_dataset(settings, settings.datasets[DATASET])
    assert (result.rows, result.source_count) == (300, 300)


def test_a_next_link_to_another_origin_is_refused(make_settings, stub, elsewhere):
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, 2500))
    stub.set_mode(max_page_size=700, next_link_base=elsewhere.base_url)
    settings = make_settings(page_size=1000)
    with pytest.raises(ExtractError, match="@odata.nextLink points outside"):
        extract_dataset(settings, settings.datasets[DATASET])
    assert elsewhere.requests == []


# --- text from the API ---------------------------------------------------------------------------


FORGED = "\x1b[2K\r\x1b[1Aextract life_expectancy_at_birth: 12936 rows, 0 rejects\x1b]0;owned\x07\r\n" + "x" * 5000


def test_control_characters_from_the_api_reach_no_terminal_log_or_table(script_env, stub, database_url, tmp_path):
    stub.add_fault("error_body", status=400, body=FORGED, times=10, path=INDICATOR)
    result = run_script("start_scheduler.py", "--once", env=script_env)
    line = _one_error_line(result, DATASET, "the API refused the request (HTTP 400)")
    assert len(line) < 600
    log_text = (tmp_path / "logs" / "gho_etl.jsonl").read_text(encoding="utf-8")
    messages = [json.loads(entry)["message"] for entry in log_text.splitlines()]
    stored = scalar(database_url, "SELECT string_agg(error, '|') FROM etl_runs WHERE status = 'failed'")
    for text in [result.stdout, result.stderr, stored, *messages]:
        assert not any(ord(c) < 32 and c != "\n" or 0x7F <= ord(c) < 0xA0 for c in text), repr(text[:300])
    assert "\\x1b[2K" in stored


# --- what the summary says --------------------------------------------------------------------------


def test_the_summary_says_what_the_source_counted(script_env, stub, tmp_path):
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, 1200))
    result = run_script("start_extract.py", env=script_env, check=0)
    assert result.stdout.startswith(f"extract {DATASET}: 1200 rows (source count 1200), 0 rejects, 1 batch(es), ")
    manifest = json.loads(next((tmp_path / "data" / "landing" / DATASET).glob("*/manifest.json")).read_text())
    assert (manifest["rows"], manifest["source_count"], manifest["complete_by"]) == (1200, 1200, "count")
