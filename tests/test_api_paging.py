"""The API boundary against servers that page, cap, count and change differently.

Each test switches the stand-in (utils/gho_stub.py), or a small server of our
own, into one way a real OData server pages and checks that the table ends up
holding exactly the rows the API holds, each landed once: client and server
paging combined, capped answers with and without a count, $skip or the Id
bound ignored, nextLinks that cycle, are relative or end in an empty piece,
rows deleted or inserted while we page, and GHO's empty answers. Where no
such end is possible the run fails with one clear line and nothing partial
applied to the table.
"""

import json

import psycopg2
import pytest

from src.contracts.landing import MANIFEST
from src.contracts.layout import Layout
from src.errors import ExtractError
from src.extract.phase import extract_dataset
from tests.api_checks import api_requests, paging_steps
from tests.boundary_checks import DATASET, INDICATOR
from tests.boundary_checks import one_error_line as _one_error_line
from tests.helpers import complete_batches, page_rows, run_script
from tests.odata_servers import EmptyEndedChains, EmptyLinksWithoutEnd, RowsInACountOfNothing, http_server
from tests.pipeline_checks import leftovers, run_pipeline, table_checksum
from utils.gho_samples import generate_rows


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
        ids.extend(row["Id"] for row in page_rows(batch / page["file"]))
    return manifest, ids


def _replace_settings(make_settings, **overrides):
    return make_settings({DATASET: {"indicator": INDICATOR, "mode": "replace"}}, **overrides)


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
    # Pages in turn: the bound is on its requests (tests/test_concurrent_pages.py: pages side by side).
    env = dict(script_env, GHO_PAGE_SIZE="20", GHO_PAGE_CONCURRENCY="1")
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
