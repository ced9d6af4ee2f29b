"""The exception tree's promises: exit codes and which failures a later retry may cure."""

import pytest

from src import errors
from src.db import Database
from src.extract.phase import extract_dataset
from src.load.phase import load_dataset
from src.transform.phase import transform_dataset


def _classes(base=errors.GhoEtlError):
    found = [base]
    for subclass in base.__subclasses__():
        found += _classes(subclass)
    return found


def test_exit_codes_live_on_the_classes():
    codes = {cls.__name__: cls.exit_code for cls in _classes()}
    assert codes.pop("ConfigError") == 2 and codes.pop("AlreadyRunning") == 3
    assert set(codes.values()) == {1}


def test_transient_means_a_later_try_may_succeed_unchanged():
    transient = sorted(cls.__name__ for cls in _classes() if cls.transient)
    assert transient == [
        "AlreadyRunning",
        "DatabaseBusy",
        "DatabaseUnavailable",
        "RangesNotHonoured",
        "SourceChanged",
        "SourceUnavailable",
        "StorageUnavailable",
        "TransientAnswer",
    ]


def test_a_source_that_keeps_failing_is_transient_and_a_missing_indicator_is_not(make_settings, stub):
    stub.add_fault("status", status=503, times=100)
    settings = make_settings(
        {"gone": {"indicator": "NOT_A_CODE"}, "down": {"indicator": "WHOSIS_000001"}}, max_attempts=2
    )
    with pytest.raises(errors.ExtractError) as down:
        extract_dataset(settings, settings.datasets["down"])
    stub.clear_faults()
    with pytest.raises(errors.ExtractError) as gone:
        extract_dataset(settings, settings.datasets["gone"])
    assert (down.value.transient, gone.value.transient) == (True, False)


def test_an_unreachable_database_is_transient_and_staging_is_kept(make_settings, stub):
    settings = make_settings(database_url="postgresql://nobody@127.0.0.1:9/none")
    dataset = settings.datasets["life_expectancy_at_birth"]
    extract_dataset(settings, dataset)
    transform_dataset(settings, dataset)
    with pytest.raises(errors.DatabaseUnavailable) as caught:
        load_dataset(settings, dataset, Database(settings))
    assert caught.value.transient
    assert list((settings.data_dir / "staging" / dataset.name).glob("*.parquet"))
