"""Rows of an indicator the batch did not ask for are rejected, never merged over the real ones.

A server that answers /api/A with B's rows (a proxy's cache, a routing slip) would otherwise load B's
values under B's codes into A's table, or, in a dataset of both, overwrite B's real values.
"""

from tests.helpers import requires_samples
from tests.pipeline_checks import run_pipeline, scalar

pytestmark = requires_samples


def test_rows_of_another_indicator_fail_the_batch_and_touch_nothing(make_settings, stub, database_url):
    settings = make_settings({"pair": {"indicators": ["WHOSIS_000001", "WHOSIS_000015"]}})
    assert all(o.ok for o in run_pipeline(settings))
    before = scalar(database_url, "SELECT sum(numeric_value) FROM pair WHERE indicator_code = 'WHOSIS_000015'")
    stub.set_rows("WHOSIS_000015", stub.state.library.rows("WHOSIS_000001"))  # the wrong indicator's rows
    outcomes = run_pipeline(settings)
    failed = [o for o in outcomes if not o.ok]
    assert [o.phase for o in failed] == ["transform"]
    assert "not one this batch asked for" in failed[0].error and "WHOSIS_000001" in failed[0].error
    after = scalar(database_url, "SELECT sum(numeric_value) FROM pair WHERE indicator_code = 'WHOSIS_000015'")
    assert after == before


def test_a_single_indicator_answered_with_another_ones_rows_fails_with_its_reason(make_settings, stub, database_url):
    stub.set_rows("WHOSIS_000001", stub.state.library.rows("WHOSIS_000015"))
    outcomes = run_pipeline(make_settings({"birth": {"indicator": "WHOSIS_000001"}}))
    assert [(o.phase, o.ok) for o in outcomes] == [("extract", True), ("transform", False)]
    assert "100.0% of rows rejected" in outcomes[-1].error and "WHOSIS_000015" in outcomes[-1].error
    assert scalar(database_url, "SELECT to_regclass('birth') IS NULL")
