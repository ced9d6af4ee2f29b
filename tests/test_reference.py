"""Reference tables and labelled views: names as GHO publishes them, beside the codes, kept fresh.

Through the stand-in serving the real catalogue and dimension samples (../shared/gho_samples) and a
real PostgreSQL.
"""

import csv
import json
import html
import logging

import pytest

from src import reference
from src.db import Database
from src.errors import ExtractError, SourceUnavailable
from tests.helpers import requires_samples, run_script, sample
from tests.odata_servers import CatalogueLinkLoop, MiscountedCatalogue, http_server
from tests.pipeline_checks import run_pipeline, scalar

pytestmark = requires_samples
DATASETS = {"life_expectancy_at_birth": {"indicator": "WHOSIS_000001"}}


def _reference_requests(stub):
    return [r["path"] for r in stub.state.request_log() if "Indicator" in r["path"] or "Dimension" in r["path"]]


def test_the_catalogue_and_dimension_values_are_stored_as_published(make_settings, database_url, stub):
    settings = make_settings(DATASETS, reference_hours=24)
    reference.refresh(settings, Database(settings))
    with open(sample("ellenlodin_Data-mining-project__who_all_indicators.csv"), encoding="utf-8") as handle:
        published = {row["IndicatorCode"]: row["IndicatorName"] for row in csv.DictReader(handle)}
    assert scalar(database_url, "SELECT count(*) FROM gho_indicators") == len(published) == 3038
    encoded = next(code for code, name in published.items() if "&amp;" in name)
    stored = scalar(database_url, "SELECT indicator_name FROM gho_indicators WHERE indicator_code = %s", [encoded])
    assert stored == html.unescape(published[encoded]) and "&amp;" not in stored and "&" in stored
    assert scalar(database_url, "SELECT indicator_name FROM gho_indicators WHERE indicator_code = 'WHOSIS_000001'") == (
        "Life expectancy at birth (years)"
    )
    value = "SELECT {} FROM gho_dimension_values WHERE dimension = %s AND code = %s"
    assert scalar(database_url, value.format("title"), ["COUNTRY", "TUR"]) == "Türkiye"
    assert scalar(database_url, value.format("title"), ["COUNTRY", "CUW"]) == "Curaçao"
    assert scalar(database_url, value.format("parent_title"), ["COUNTRY", "IDN"]) is not None
    assert scalar(database_url, value.format("title"), ["WORLDBANKINCOMEGROUP", "NA"]) == "NA"  # a code, not null
    assert scalar(database_url, value.format("title"), ["SEX", "SEX_BTSX"]) == "Both sexes"
    assert scalar(database_url, "SELECT count(*) FROM gho_dimension_values WHERE dimension = 'COUNTRY'") == 234
    assert scalar(database_url, "SELECT title FROM gho_dimensions WHERE code = 'REGION'") == "WHO regions"


def test_the_labeled_view_names_countries_sexes_and_the_indicator(make_settings, database_url):
    settings = make_settings(DATASETS, reference_hours=24)
    outcomes = run_pipeline(settings)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert scalar(database_url, "SELECT count(*) FROM life_expectancy_at_birth_labeled") == 12936
    row = "SELECT {} FROM life_expectancy_at_birth_labeled WHERE spatial_dim = %s LIMIT 1"
    assert scalar(database_url, row.format("location_name"), ["DEU"]) == "Germany"
    assert scalar(database_url, row.format("location_name"), ["TUR"]) == "Türkiye"
    assert scalar(database_url, row.format("location_type"), ["DEU"]) == "Country"
    assert scalar(database_url, row.format("parent_region_name"), ["DEU"]) == "Europe"
    assert scalar(database_url, row.format("indicator_name"), ["DEU"]) == "Life expectancy at birth (years)"
    both = "SELECT DISTINCT dim1_title FROM life_expectancy_at_birth_labeled WHERE dim1 = 'SEX_BTSX'"
    assert scalar(database_url, both) == "Both sexes"
    by_name = "SELECT count(*) FROM life_expectancy_at_birth_labeled WHERE location_name ILIKE '%germany%'"
    assert scalar(database_url, by_name) == 66  # 22 years x 3 sexes
    countries = (
        "SELECT count(DISTINCT spatial_dim) FROM life_expectancy_at_birth_labeled WHERE location_type = 'Country'"
    )
    assert scalar(database_url, countries) == 185


def test_the_reference_is_refreshed_when_due_and_not_before(make_settings, database_url, stub):
    settings = make_settings(DATASETS, reference_hours=24)
    run_pipeline(settings)
    first = _reference_requests(stub)
    assert "/api/Indicator" in first and "/api/DIMENSION/SEX/DimensionValues" in first
    stub.state.reset()
    run_pipeline(settings)
    assert _reference_requests(stub) == []  # fresh: a second job asks nothing
    water = {**DATASETS, "water": {"indicator": "WSH_WATER_BASIC"}}
    stub.state.reset()
    run_pipeline(make_settings(water, reference_hours=24))
    # A dataset new to the reference: only the values of the one dimension it brings.
    assert _reference_requests(stub) == ["/api/DIMENSION/RESIDENCEAREATYPE/DimensionValues"]
    assert scalar(database_url, "SELECT detail FROM gho_reference WHERE resource = 'dataset:water'") == (
        "COUNTRY,GLOBAL,REGION,RESIDENCEAREATYPE"
    )
    scalar(database_url, "UPDATE gho_reference SET refreshed_at = now() - interval '25 hours' RETURNING 1")
    stub.state.reset()
    run_pipeline(make_settings(water, reference_hours=24))
    assert "/api/Indicator" in _reference_requests(stub)  # older than GHO_REFERENCE_HOURS: all of it again
    scalar(database_url, "UPDATE gho_reference SET refreshed_at = now() - interval '25 hours' RETURNING 1")
    stub.state.reset()
    run_pipeline(make_settings(water, reference_hours=0))
    assert _reference_requests(stub) == []  # 0: by hand only


def test_a_failing_reference_keeps_the_last_names_and_never_fails_the_job(make_settings, database_url, stub, caplog):
    settings = make_settings(DATASETS, reference_hours=24)
    run_pipeline(settings)
    with Database(settings).connect() as connection, connection.cursor() as cursor:
        cursor.execute("UPDATE gho_reference SET refreshed_at = now() - interval '2 days'")
    stub.state.reference["Indicator"] = []  # GHO's transient empty answer, every time
    with caplog.at_level(logging.WARNING, logger="gho_etl.reference"):
        outcomes = run_pipeline(settings)
    assert all(o.ok for o in outcomes)
    assert any("reference not refreshed" in r.getMessage() for r in caplog.records)
    assert scalar(database_url, "SELECT count(*) FROM gho_indicators") == 3038
    row = "SELECT location_name FROM life_expectancy_at_birth_labeled WHERE spatial_dim = 'DEU' LIMIT 1"
    assert scalar(database_url, row) == "Germany"


@pytest.mark.parametrize(
    "handler, problem",
    [
        (MiscountedCatalogue, "1 rows received, the API counts 10"),
        (CatalogueLinkLoop, "leads back to a page it already sent"),
    ],
)
def test_a_reference_answer_that_cannot_be_trusted_changes_nothing(make_settings, database_url, handler, problem):
    settings = make_settings(DATASETS, reference_hours=24)
    reference.refresh(settings, Database(settings))
    with http_server(handler) as url:
        hostile = make_settings(DATASETS, reference_hours=24, api_base_url=url)
        with pytest.raises(ExtractError, match=problem):
            reference.refresh(hostile, Database(hostile))
    assert scalar(database_url, "SELECT count(*) FROM gho_indicators") == 3038


def test_an_empty_dimension_list_is_retried_then_refused(make_settings, database_url, stub):
    settings = make_settings(DATASETS, reference_hours=24)
    reference.refresh(settings, Database(settings))
    stub.state.reference["Dimension"] = []
    with pytest.raises(SourceUnavailable, match="no rows"):
        reference.refresh(settings, Database(settings))
    assert scalar(database_url, "SELECT count(*) FROM gho_dimensions") == 202
    assert sum(r["path"] == "/api/Dimension" for r in stub.state.request_log()) == 1 + settings.max_attempts


def test_codes_from_the_data_never_reach_the_url_unless_the_api_lists_them(make_settings, stub):
    rows = stub.state.library.rows("WHOSIS_000001")[:20]
    hostile = [dict(row, Dim1Type="../../Indicator?x=", Id=row["Id"]) for row in rows]
    stub.set_rows("WHOSIS_000001", hostile)
    settings = make_settings(DATASETS, reference_hours=24)
    assert all(o.ok for o in run_pipeline(settings))
    paths = _reference_requests(stub)
    assert paths and all(p.startswith("/api/DIMENSION/") or p in ("/api/Indicator", "/api/Dimension") for p in paths)
    assert not any(".." in p for p in paths)


def test_long_table_names_sharing_a_prefix_get_views_of_their_own():
    from src.contracts.reference import labeled_view_name

    first, second = labeled_view_name("t" * 62 + "1"), labeled_view_name("t" * 62 + "2")
    assert first != second and len(first) == len(second) == 63 and first.endswith("_labeled")
    assert labeled_view_name("life_expectancy_at_birth") == "life_expectancy_at_birth_labeled"


@pytest.mark.parametrize(
    "raw, problem",
    [
        ({"a": {"indicator": "X", "table": "gho_indicators"}}, "is reserved"),
        ({"a": {"indicator": "X"}, "b": {"indicator": "Y", "table": "a_labeled"}}, "is the labelled view of 'a'"),
    ],
)
def test_tables_named_like_the_reference_or_a_labelled_view_are_refused(raw, problem):
    from src.errors import ConfigError
    from src.settings import validate_datasets

    with pytest.raises(ConfigError, match=problem):
        validate_datasets(raw)


def test_the_labeled_view_follows_renamed_columns_of_a_dataset_of_two_indicators(make_settings, database_url):
    datasets = {
        "life": {
            "indicators": ["WHOSIS_000001", "WHOSIS_000015"],
            "columns": ["numeric_value", "dim1_type", "parent_location"],
            "rename": {"spatial_dim": "country", "dim1": "sex", "time_dim": "year"},
        }
    }
    outcomes = run_pipeline(make_settings(datasets, reference_hours=24))
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert scalar(database_url, "SELECT count(*) FROM life_labeled") == 2 * 12936
    names = (
        "SELECT string_agg(DISTINCT indicator_name, ' | ' ORDER BY indicator_name) FROM life_labeled "
        "WHERE country = 'TUR' AND sex_title = 'Both sexes' AND location_name = 'Türkiye' AND year = 2019"
    )
    assert scalar(database_url, names) == "Life expectancy at age 60 (years) | Life expectancy at birth (years)"
    columns = (
        "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns "
        "WHERE table_name = 'life_labeled'"
    )
    assert ",country,location_name,parent_location,parent_region_name," in scalar(database_url, columns)


def test_status_says_what_the_reference_holds_and_when_it_was_refreshed(script_env):
    env = dict(script_env, GHO_REFERENCE_HOURS="24")
    before = run_script("status.py", env=env, check=0).stdout
    assert "reference (names of indicators and dimensions): never refreshed" in before
    run_script("start_scheduler.py", "--once", env=env, check=0)
    shown = json.loads(run_script("status.py", "--json", env=env, check=0).stdout)["reference"]
    assert shown["indicators"] == 3038 and shown["refresh_hours"] == 24
    assert shown["dimensions"] == ["COUNTRY", "GLOBAL", "REGION", "SEX", "WORLDBANKINCOMEGROUP"]
    text = run_script("status.py", env=env, check=0).stdout
    assert "reference: 3038 indicators, values of COUNTRY, GLOBAL, REGION, SEX, WORLDBANKINCOMEGROUP" in text
    assert "again after each job once it is older than 24 hours" in text


def test_a_dataset_removed_leaves_no_stale_reference_behind(make_settings, database_url, stub):
    water = {**DATASETS, "water": {"indicator": "WSH_WATER_BASIC"}}
    run_pipeline(make_settings(water, reference_hours=24))
    assert scalar(database_url, "SELECT count(*) FROM gho_reference WHERE resource LIKE '%RESIDENCEAREATYPE%'") == 1
    scalar(database_url, "UPDATE gho_reference SET refreshed_at = now() - interval '25 hours' RETURNING 1")
    run_pipeline(make_settings(DATASETS, reference_hours=24))  # water is gone: a full refresh without it
    stale = "SELECT count(*) FROM gho_reference WHERE refreshed_at < now() - interval '1 hour'"
    assert scalar(database_url, stale) == 0
    assert scalar(database_url, "SELECT count(*) FROM gho_reference WHERE resource = 'dataset:water'") == 0
    stub.state.reset()
    run_pipeline(make_settings(DATASETS, reference_hours=24))
    assert _reference_requests(stub) == []  # and so the next job has nothing to refresh


def test_an_empty_answer_for_stored_values_is_retried_and_keeps_them(make_settings, database_url, stub):
    settings = make_settings(DATASETS, reference_hours=24)
    reference.refresh(settings, Database(settings))
    stub.state.reference["DIMENSION/COUNTRY/DimensionValues"] = []  # GHO's transient empty answer
    with pytest.raises(SourceUnavailable, match="no rows"):
        reference.refresh(settings, Database(settings))
    assert scalar(database_url, "SELECT count(*) FROM gho_dimension_values WHERE dimension = 'COUNTRY'") == 234


def test_hostile_reference_text_is_stored_as_text_and_printed_safely(make_settings, database_url, stub, script_env):
    stub.state.reference["Indicator"] = [
        {"IndicatorCode": "EVIL", "IndicatorName": "water \x1b[31mRED\x1b[0m \x1b]0;pwned\x07" + "x" * 5000},
        {"IndicatorCode": "has space and ' quote", "IndicatorName": "bad code"},
        {"IndicatorCode": "NESTED", "IndicatorName": {"nested": [1, 2]}},
    ]
    stub.state.reference["DIMENSION/SEX/DimensionValues"] = [
        {"Code": "SEX_BTSX", "Title": {"nested": [1]}, "Dimension": "SEX"},
        {"Code": "SEX_BTSX", "Title": "Both sexes", "Dimension": "SEX"},
    ]
    settings = make_settings(DATASETS, reference_hours=24)
    result = reference.refresh(settings, Database(settings))
    assert (result.indicators, result.values["SEX"]) == (2, 1)  # counted as stored: one row per code
    assert scalar(database_url, "SELECT indicator_name FROM gho_indicators WHERE indicator_code = 'NESTED'") is None
    assert scalar(database_url, "SELECT title FROM gho_dimension_values WHERE code = 'SEX_BTSX'") == "Both sexes"
    shown = run_script("indicators.py", "search", "water", env=dict(script_env, GHO_API_BASE_URL=stub.base_url))
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout and len(shown.stdout) < 1000
