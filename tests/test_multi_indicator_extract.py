"""Extract of a dataset of several indicators: one landing batch, each indicator paged by Id and counted."""

import json

import pytest

from src.contracts.landing import MANIFEST, PROGRESS, REQUEST
from src.contracts.layout import Layout
from src.errors import ExtractError
from src.extract.phase import extract_dataset
from tests.api_checks import api_requests, paging_step
from tests.helpers import complete_batches, page_rows
from utils.gho_samples import generate_rows

FIRST, SECOND = "GEN_MA", "GEN_MB"
DATASETS = {"both": {"indicators": [FIRST, SECOND]}}


def _steps(stub, code) -> list:
    return [paging_step(r) for r in api_requests(stub) if r["path"].endswith("/" + code)]


def _batch(settings, name="both"):
    return complete_batches(Layout(settings.data_dir), name)[0]


def _landed_ids(batch) -> list:
    manifest = json.loads((batch / MANIFEST).read_text())
    return [(row["IndicatorCode"], row["Id"]) for page in manifest["pages"] for row in page_rows(batch / page["file"])]


def test_every_indicator_lands_in_one_batch_paged_by_its_own_ids_and_proven_by_its_own_count(make_settings, stub):
    stub.set_rows(FIRST, generate_rows(FIRST, 2500))
    stub.set_rows(SECOND, generate_rows(SECOND, 1200))  # Ids 1..1200 again: Id order is per indicator
    settings = make_settings(DATASETS, page_size=1000)
    result = extract_dataset(settings, settings.datasets["both"])
    assert (result.rows, result.source_count, result.pages) == (3700, 3700, 5)
    assert _steps(stub, FIRST) == ["first", 1000, 2000, "count"]
    assert _steps(stub, SECOND) == ["first", 1000, "count"]
    batch = _batch(settings)
    assert _landed_ids(batch) == [(FIRST, n) for n in range(1, 2501)] + [(SECOND, n) for n in range(1, 1201)]
    manifest = json.loads((batch / MANIFEST).read_text())
    assert [p["indicator"] for p in manifest["pages"]] == [FIRST] * 3 + [SECOND] * 2
    assert (manifest["source_count"], manifest["complete_by"]) == (3700, "count")
    assert json.loads((batch / REQUEST).read_text())["indicators"] == [FIRST, SECOND]


def test_a_batch_of_one_indicator_is_written_as_before(make_settings, stub):
    """Landing batches already on users' disks resume: the request, the state and the manifest keep their shape."""
    stub.set_rows(FIRST, generate_rows(FIRST, 1500))
    settings = make_settings({"one": {"indicators": [FIRST]}}, page_size=1000)
    extract_dataset(settings, settings.datasets["one"])
    batch = _batch(settings, "one")
    assert json.loads((batch / REQUEST).read_text()) == {
        "base_url": stub.base_url,
        "indicator": FIRST,
        "filter": None,
        "page_size": 1000,
        "paging": "keyset:Id",
    }
    progress = json.loads((batch / PROGRESS).read_text())
    assert sorted(progress) == [
        "attempt",
        "count",
        "landed",
        "last_id",
        "pages",
        "query",
        "requests",
        "step",
        "version",
    ]
    manifest = json.loads((batch / MANIFEST).read_text())
    assert [sorted(p) for p in manifest["pages"]] == [["file", "first_id", "last_id", "rows", "sha256"]] * 2


def test_an_extract_stopped_in_the_second_indicator_resumes_there(make_settings, stub):
    stub.set_rows(FIRST, generate_rows(FIRST, 2000))
    stub.set_rows(SECOND, generate_rows(SECOND, 3500))
    settings = make_settings(DATASETS, page_size=1000, max_attempts=2)
    stub.add_fault("status", status=503, times=100, path=SECOND, after=2)  # two pages of the second, then down
    with pytest.raises(ExtractError, match=f"indicator {SECOND}: giving up after 2 attempts"):
        extract_dataset(settings, settings.datasets["both"])
    batch = next(Layout(settings.data_dir).landing("both").iterdir())
    progress = json.loads((batch / PROGRESS).read_text())
    assert (progress["landed"], len(progress["pages"])) == (4000, 4)

    stub.clear_faults()
    stub.clear_requests()
    result = extract_dataset(settings, settings.datasets["both"])
    assert result.resumed and (result.rows, result.source_count) == (5500, 5500)
    assert _steps(stub, FIRST) == []  # proven complete before the stop: not asked again
    assert _steps(stub, SECOND) == [2000, 3000, "count"]
    assert _landed_ids(batch) == [(FIRST, n) for n in range(1, 2001)] + [(SECOND, n) for n in range(1, 3501)]


def test_an_empty_indicator_among_others_adds_nothing(make_settings, stub):
    stub.set_rows(FIRST, [])
    stub.set_rows(SECOND, generate_rows(SECOND, 700))
    settings = make_settings(DATASETS, page_size=1000)
    result = extract_dataset(settings, settings.datasets["both"])
    assert (result.rows, result.source_count) == (700, 700)
    assert _landed_ids(_batch(settings)) == [(SECOND, n) for n in range(1, 701)]


def test_a_change_in_the_second_indicator_starts_the_whole_batch_over(make_settings, stub):
    stub.set_rows(FIRST, generate_rows(FIRST, 1500))
    stub.set_rows(SECOND, generate_rows(SECOND, 2500))
    settings = make_settings(DATASETS, page_size=1000)
    stub.after_requests(4, lambda server: server.delete_rows(SECOND, [5]))  # after the second's first page
    result = extract_dataset(settings, settings.datasets["both"])
    assert (result.rows, result.source_count, result.restarts) == (3999, 3999, 1)
    assert _steps(stub, FIRST) == ["first", 1000, "count"] * 2
    assert _landed_ids(_batch(settings)) == [(FIRST, n) for n in range(1, 1501)] + [
        (SECOND, n) for n in range(1, 2501) if n != 5
    ]


def test_an_unknown_code_among_several_is_named(make_settings, stub):
    stub.set_rows(FIRST, generate_rows(FIRST, 10))
    settings = make_settings({"both": {"indicators": [FIRST, "NOT_A_CODE"]}})
    with pytest.raises(ExtractError, match="indicator NOT_A_CODE not found"):
        extract_dataset(settings, settings.datasets["both"])
