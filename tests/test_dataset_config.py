"""Dataset entries of several indicators, with a choice of columns and renames: validated to one line each."""

import pytest

from src.contracts import schema
from src.errors import ConfigError
from src.settings import validate_datasets
from tests.helpers import run_script, write_dataset_config


def _one(entry):
    return validate_datasets({"both": entry})["both"]


def test_indicators_give_the_dataset_every_code_and_a_display_value():
    dataset = _one({"indicators": ["WHOSIS_000001", "WHOSIS_000015"]})
    assert dataset.indicators == ("WHOSIS_000001", "WHOSIS_000015")
    assert dataset.indicator == "WHOSIS_000001, WHOSIS_000015"


def test_one_indicator_in_a_list_is_the_same_dataset_as_indicator():
    listed, named = _one({"indicators": ["WHOSIS_000001"]}), _one({"indicator": "WHOSIS_000001"})
    assert listed == named
    assert (named.indicator, named.indicators) == ("WHOSIS_000001", ("WHOSIS_000001",))


def test_without_columns_every_column_keeps_its_name():
    dataset = _one({"indicator": "A"})
    assert all(dataset.column_for(c) == c for c in schema.CORE_COLUMNS)
    assert dataset.column_for("a_field_added_later") == "a_field_added_later"


def test_columns_keep_the_listed_ones_and_the_natural_key_with_their_new_names():
    dataset = _one(
        {
            "indicator": "A",
            "columns": ["numeric_value", "low", "high"],
            "rename": {"spatial_dim": "Country", "time_dim": "year", "numeric_value": "years"},
        }
    )
    kept = {c: dataset.column_for(c) for c in schema.CORE_COLUMNS if dataset.column_for(c)}
    expected_key = {c: c for c in schema.NATURAL_KEY} | {"spatial_dim": "country", "time_dim": "year"}
    assert kept == expected_key | {"numeric_value": "years", "low": "low", "high": "high"}
    assert dataset.column_for("value") is None and dataset.column_for("id") is None
    assert dataset.column_for("a_field_added_later") is None  # a listed set is exact


@pytest.mark.parametrize(
    "entry, message",
    [
        (
            {"indicator": "A", "indicators": ["B"]},
            "DATASET_CONFIG['both'].indicators: give indicator (one code) or indicators (a list of codes), not both",
        ),
        ({"enabled": True}, "DATASET_CONFIG['both'].indicator: missing (a GHO indicator code, or indicators: a list)"),
        ({"indicators": []}, "DATASET_CONFIG['both'].indicators: must be a list of 1 to 50 GHO indicator codes"),
        ({"indicators": "A"}, "DATASET_CONFIG['both'].indicators: must be a list of 1 to 50 GHO indicator codes"),
        (
            {"indicators": [f"C{n}" for n in range(51)]},
            "DATASET_CONFIG['both'].indicators: must be a list of 1 to 50 GHO indicator codes",
        ),
        ({"indicators": ["A", "A/../B"]}, "DATASET_CONFIG['both'].indicators: 'A/../B' is not a GHO indicator code"),
        ({"indicators": ["A", 7]}, "DATASET_CONFIG['both'].indicators: 7 is not a GHO indicator code"),
        ({"indicators": ["A", "B", "a"]}, "DATASET_CONFIG['both'].indicators: 'a' is listed twice"),
        ({"indicator": "A", "columns": "value"}, "DATASET_CONFIG['both'].columns: must be a list of column names"),
        (
            {"indicator": "A", "columns": ["value", "country"]},
            "DATASET_CONFIG['both'].columns: unknown column 'country' (allowed: "
            + ", ".join(schema.CORE_COLUMNS)
            + ")",
        ),
        ({"indicator": "A", "columns": ["value", "value"]}, "DATASET_CONFIG['both'].columns: 'value' is listed twice"),
        (
            {"indicator": "A", "rename": ["spatial_dim"]},
            "DATASET_CONFIG['both'].rename: must be an object mapping column names to new names",
        ),
        (
            {"indicator": "A", "rename": {"country": "land"}},
            "DATASET_CONFIG['both'].rename: unknown column 'country' (allowed: " + ", ".join(schema.CORE_COLUMNS) + ")",
        ),
        (
            {"indicator": "A", "columns": ["value"], "rename": {"comments": "note"}},
            "DATASET_CONFIG['both'].rename: renames 'comments', which columns leaves out",
        ),
        (
            {"indicator": "A", "rename": {"spatial_dim": "the country"}},
            "DATASET_CONFIG['both'].rename: new name 'the country' for 'spatial_dim' is not a plain SQL identifier "
            "([A-Za-z_][A-Za-z0-9_]*, at most 63 characters)",
        ),
        (
            {"indicator": "A", "rename": {"spatial_dim": 5}},
            "DATASET_CONFIG['both'].rename: new name 5 for 'spatial_dim' is not a plain SQL identifier "
            "([A-Za-z_][A-Za-z0-9_]*, at most 63 characters)",
        ),
        (
            {"indicator": "A", "rename": {"numeric_value": "Value"}},
            "DATASET_CONFIG['both'].rename: new name 'value' for 'numeric_value' is the name of a GHO column",
        ),
        (
            {"indicator": "A", "rename": {"value": "_batch_id"}},
            "DATASET_CONFIG['both'].rename: new name '_batch_id' for 'value' is reserved "
            "(names starting with _ are gho-etl's own, such as _batch_id and _loaded_at)",
        ),
        (
            {"indicator": "A", "rename": {"value": "xmin"}},
            "DATASET_CONFIG['both'].rename: new name 'xmin' for 'value' is a PostgreSQL system column",
        ),
        (
            {"indicator": "A", "rename": {"low": "bound", "high": "Bound"}},
            "DATASET_CONFIG['both'].rename: 'bound' is the new name of both 'low' and 'high'",
        ),
    ],
)
def test_bad_entry_is_one_line_naming_dataset_key_and_problem(entry, message):
    with pytest.raises(ConfigError) as caught:
        validate_datasets({"both": entry})
    assert str(caught.value) == message


def test_a_bad_entry_stops_the_scripts_with_exit_code_2(tmp_path, script_env):
    config = write_dataset_config(tmp_path, {"both": {"indicators": ["WHOSIS_000001"], "columns": ["country"]}})
    result = run_script("start_scheduler.py", "--once", env=dict(script_env, DATASET_CONFIG_FILE=str(config)))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: DATASET_CONFIG['both'].columns: unknown column 'country' (allowed: "
        + ", ".join(schema.CORE_COLUMNS)
        + ")"
    ]
    assert not (tmp_path / "data").exists()
