"""The API boundary against servers that page, count, loop, drip, flood and redirect differently.

Each test switches the stand-in (utils/gho_stub.py) into one behaviour of a real
or hostile OData server and checks the only two acceptable ends: the table
holds exactly the rows the API holds, or the run fails with one clear line
naming the dataset and the cause, in bounded time and memory, with nothing
partial applied to the table.
"""

import json
import sys
import time

import psycopg2
import pytest

from src.errors import ExtractError
from src.contracts.landing import MANIFEST
from src.extract.phase import extract_dataset
from tests.helpers import complete_batches
from src.contracts.layout import Layout
from tests.api_checks import api_requests, paging_steps
from tests.odata_servers import (
    EmptyEndedChains,
    EmptyLinksWithoutEnd,
    RowsInACountOfNothing,
    endless_gzip_name,
    endless_trailers,
    header_drip,
    http_server,
    raw_server,
)
from tests.helpers import PROJECT_ROOT, run_script, write_dataset_config
from tests.pipeline_checks import leftovers, run_pipeline, scalar, table_checksum
from utils.gho_samples import generate_rows
from utils.gho_stub import StubServer
from utils.measure import run_measured

DATASET = "life_expectancy_at_birth"
INDICATOR = "WHOSIS_000001"


def _facts(rows):
    """The natural keys of source rows, as the table stores them (generated rows differ in these)."""
    return sorted((r["SpatialDim"], r["TimeDim"], r["Dim1"]) for r in rows)


def _table_facts(url, table=DATASET):
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT spatial_dim, time_dim, dim1 FROM {table}")
        found = sorted(cursor.fetchall())
    connection.close()
    return found


def _landed_ids(settings):
    batch = complete_batches(Layout(settings.data_dir), DATASET)[-1]
    manifest = json.loads((batch / MANIFEST).read_text())
    ids = []
    for page in manifest["pages"]:
        ids.extend(row["Id"] for row in json.loads((batch / page["file"]).read_text())["value"])
    return manifest, ids


def _replace_settings(make_settings, **overrides):
    return make_settings({DATASET: {"indicator": INDICATOR, "mode": "replace"}}, **overrides)


def _one_error_line(result, *parts):
    """The script failed with exactly one `error:` line that names each of `parts`, and nothing unprintable."""
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for part in parts:
        assert part in errors[0], errors[0]
    assert errors[0].isprintable(), repr(errors[0])
    assert "Traceback" not in result.stderr + result.stdout
    return errors[0]


# --- paging: every combination of client and server paging lands every row once ------------
@pytest.mark.parametrize(
    "page_size, server_page",
    [
        (1000, None),  # client paging alone
        (100000, 700),  # server paging alone
        (1000, 700),  # server page smaller than $top, not dividing it
        (1000, 1000),  # equal
        (1000, 1500),  # larger
        (1000, 300),  # several server pages per request
        (2500, 1250),  # the last request ends exactly on a server page
    ],
)
def test_every_combination_of_client_and_server_paging_lands_every_row_once(
    make_settings, stub, page_size, server_page
):
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, 2500))
    if server_page:
        stub.set_mode(max_page_size=server_page)
    settings = make_settings(page_size=page_size)
    result = extract_dataset(settings, settings.datasets[DATASET])
    manifest, ids = _landed_ids(settings)
    assert ids == list(range(1, 2501))
    assert (result.rows, result.source_count, manifest["source_count"]) == (2500, 2500, 2500)
    assert all("%24orderby=Id" in r["query"] for r in api_requests(stub) if "%24top=0" not in r["query"])


def test_a_capped_server_never_shrinks_a_replace_table(make_settings, stub, database_url):
    """A server capping every answer at 1,000 rows, without a nextLink, is paged to the end."""
    rows = generate_rows(INDICATOR, 5000)
    stub.set_rows(INDICATOR, rows)
    settings = _replace_settings(make_settings, page_size=10000)
    assert all(o.ok for o in run_pipeline(settings))
    stub.set_mode(cap=1000)
    outcomes = run_pipeline(settings)
    assert [o.ok for o in outcomes] == [True, True, True], [o.error for o in outcomes]
    assert outcomes[0].rows_written == 5000 and outcomes[0].source_count == 5000
    assert _table_facts(database_url) == _facts(rows)


def test_a_capped_server_without_a_count_is_paged_until_two_empty_answers(make_settings, stub, database_url, caplog):
    rows = generate_rows(INDICATOR, 2500)
    stub.set_rows(INDICATOR, rows)
    stub.set_mode(cap=1000, no_count=True)
    settings = make_settings(page_size=10000)
    outcomes = run_pipeline(settings)
    [warning] = [r for r in caplog.records if "sent no @odata.count" in r.getMessage()]
    assert warning.levelname == "WARNING" and warning.dataset == DATASET
    assert [o.ok for o in outcomes] == [True, True, True], [o.error for o in outcomes]
    assert outcomes[0].summary().startswith(f"extract {DATASET}: 2500 rows (no source count), 0 rejects")
    assert _table_facts(database_url) == _facts(rows)
    assert paging_steps(stub) == ["first", 1000, 2000, 2500, 2500]  # a short page is never taken as the end


def test_a_server_that_ignores_skip_still_yields_every_row(make_settings, stub, database_url):
    rows = generate_rows(INDICATOR, 100)
    stub.set_rows(INDICATOR, rows)
    stub.set_mode(ignore_skip=True)
    settings = make_settings(page_size=20)
    outcomes = run_pipeline(settings)
    assert [o.ok for o in outcomes] == [True, True, True], [o.error for o in outcomes]
    assert _table_facts(database_url) == _facts(rows)


def test_a_server_that_ignores_the_id_bound_fails_clearly_and_applies_nothing(script_env, stub, database_url):
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, 100))
    env = dict(script_env, GHO_PAGE_SIZE="20")
    run_script("start_scheduler.py", "--once", env=env, check=0)
    before = table_checksum(database_url, DATASET)
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, 100, seed=2))
    stub.set_mode(ignore_keyset=True)
    stub.clear_requests()
    result = run_script("start_scheduler.py", "--once", env=env)
    _one_error_line(result, DATASET, "sent rows from Id 1 again")
    assert len(api_requests(stub)) <= 2 + 1
    assert table_checksum(database_url, DATASET) == before


def test_next_links_that_cycle_fail_clearly_within_a_few_requests(make_settings, stub):
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, 2500))
    stub.set_mode(max_page_size=700, cycle_links=True)
    settings = make_settings(page_size=100000)
    with pytest.raises(ExtractError, match="@odata.nextLink leads back to a page it already sent"):
        extract_dataset(settings, settings.datasets[DATASET])
    assert len(api_requests(stub)) <= 4
    assert complete_batches(Layout(settings.data_dir), DATASET) == []


def test_relative_next_links_are_followed(make_settings, stub):
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, 2500))
    stub.set_mode(max_page_size=700, link_style="relative")
    settings = make_settings(page_size=1000)
    extract_dataset(settings, settings.datasets[DATASET])
    assert _landed_ids(settings)[1] == list(range(1, 2501))


def test_next_link_chains_that_end_in_an_empty_piece_are_paged_on(make_settings):
    with http_server(EmptyEndedChains) as base_url:
        settings = make_settings(api_base_url=base_url, page_size=1000)
        result = extract_dataset(settings, settings.datasets[DATASET])
    assert (result.rows, result.source_count) == (1500, 1500)
    assert _landed_ids(settings)[1] == list(range(1, 1501))


@pytest.mark.parametrize(
    "handler, message",
    [
        (EmptyLinksWithoutEnd, r"nextLinks led to 4 empty pages in a row"),
        (RowsInACountOfNothing, r"the API counts 0 rows but sent 3 in one answer"),
    ],
    ids=["empty-pages-linked-without-end", "rows-in-a-count-of-nothing"],
)
def test_a_server_that_contradicts_itself_fails_clearly_and_lands_nothing(make_settings, handler, message):
    with http_server(handler) as base_url:
        settings = make_settings(api_base_url=base_url)
        with pytest.raises(ExtractError, match=message):
            extract_dataset(settings, settings.datasets[DATASET])
    assert complete_batches(Layout(settings.data_dir), DATASET) == []


# --- upstream changes while we page ---------------------------------------------------------
@pytest.mark.parametrize(
    "change",
    ["delete_landed", "delete_ahead", "insert_ahead", "delete_and_insert"],
)
def test_a_source_that_changes_while_paged_is_paged_again(make_settings, stub, database_url, change):
    rows = generate_rows(INDICATOR, 3000)
    stub.set_rows(INDICATOR, rows)
    settings = _replace_settings(make_settings, page_size=1000)
    assert all(o.ok for o in run_pipeline(settings))
    newer = generate_rows(INDICATOR, 3001, seed=3)
    stub.set_rows(INDICATOR, newer[:3000])
    extra = dict(newer[3000], Id=5000)

    def mutate(server):
        if change in ("delete_landed", "delete_and_insert"):
            server.delete_rows(INDICATOR, [5])
        if change == "delete_ahead":
            server.delete_rows(INDICATOR, [2500])
        if change in ("insert_ahead", "delete_and_insert"):
            server.insert_rows(INDICATOR, [extra])

    stub.clear_requests()
    stub.after_requests(1, mutate)  # between the first and the second page
    outcomes = run_pipeline(settings)
    assert [o.ok for o in outcomes] == [True, True, True], [o.error for o in outcomes]
    deleted = {"delete_landed": {5}, "delete_ahead": {2500}, "delete_and_insert": {5}}.get(change, set())
    served = [r for r in newer[:3000] if r["Id"] not in deleted] + ([extra] if "insert" in change else [])
    assert _table_facts(database_url) == _facts(served)
    assert outcomes[0].details.restarts == 1
    assert leftovers(settings.data_dir) == []


def test_a_source_that_never_holds_still_fails_clearly_and_keeps_the_table(make_settings, stub, database_url):
    from src.extract.batches import MAX_RESTARTS

    stub.set_rows(INDICATOR, generate_rows(INDICATOR, 3000))
    settings = _replace_settings(make_settings, page_size=1000)
    assert all(o.ok for o in run_pipeline(settings))
    before = table_checksum(database_url, DATASET)
    next_id = iter(range(10_000, 20_000))

    def keep_changing(server):
        server.insert_rows(INDICATOR, [dict(generate_rows(INDICATOR, 1)[0], Id=next(next_id), SpatialDim="NEW")])
        server.after_requests(1, keep_changing)

    stub.after_requests(1, keep_changing)
    [outcome] = run_pipeline(settings)
    assert outcome.phase == "extract" and not outcome.ok
    assert f"the source changed while it was paged, {MAX_RESTARTS + 1} times in a row" in outcome.error
    assert table_checksum(database_url, DATASET) == before
    assert complete_batches(Layout(settings.data_dir), DATASET) == []


# --- GHO's empty answers ----------------------------------------------------------------------
def test_an_empty_answer_where_the_count_says_rows_remain_is_asked_again(make_settings, stub, database_url):
    rows = generate_rows(INDICATOR, 5000)
    stub.set_rows(INDICATOR, rows)
    settings = _replace_settings(make_settings, page_size=1000)
    assert all(o.ok for o in run_pipeline(settings))
    stub.clear_requests()
    stub.add_fault("empty_value", times=2, after=2, path=INDICATOR)  # the third request answers nothing twice
    outcomes = run_pipeline(settings)
    assert [o.ok for o in outcomes] == [True, True, True], [o.error for o in outcomes]
    assert _table_facts(database_url) == _facts(rows)
    assert len(api_requests(stub)) == 5 + 2 + 1  # five pages, two answered again, the final count


def test_a_first_answer_of_nothing_is_confirmed_before_it_is_believed(make_settings, stub, database_url):
    rows = generate_rows(INDICATOR, 1200)
    stub.set_rows(INDICATOR, rows)
    stub.add_fault("empty_value", count=0, times=1, path=INDICATOR)  # "no rows, count 0", once
    outcomes = run_pipeline(make_settings(page_size=500))
    assert [o.ok for o in outcomes] == [True, True, True], [o.error for o in outcomes]
    assert _table_facts(database_url) == _facts(rows)


def test_an_indicator_that_is_really_empty_leaves_a_replace_table_as_it_is(make_settings, stub, database_url):
    stub.set_rows(INDICATOR, generate_rows(INDICATOR, 1200))
    settings = _replace_settings(make_settings, page_size=500)
    assert all(o.ok for o in run_pipeline(settings))
    before = table_checksum(database_url, DATASET)
    stub.set_rows(INDICATOR, [])
    outcomes = run_pipeline(settings)
    assert [o.ok for o in outcomes] == [True, True, True], [o.error for o in outcomes]
    assert outcomes[0].source_count == 0
    assert table_checksum(database_url, DATASET) == before


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
