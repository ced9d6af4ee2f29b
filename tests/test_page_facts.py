"""What the change probe keeps of a landed page is read in the same pass as paging reads it, and is what
reading the landed page again gives (a resumed run reads it so)."""

import json

import pytest

from src.errors import TransientAnswer
from src.extract.page_writer import PageWriter
from src.sources.gho_odata.answer import parse_answer
from src.sources.gho_odata.probe import UNKNOWN, latest_row
from src.storage.local import LocalFolder
from tests.helpers import requires_samples, sample


@pytest.mark.parametrize(
    "body",
    [
        b'{"value": [{"Id": 1, "Date": "2024-01-02T00:00:00"}, {"Id": 5, "Date": "2025-03-04T10:00:00+02:00"}]}',
        b'{"value": [{"Id": 9, "Date": "2024-01-02"}, {"Id": 3, "Date": "2024-01-02"}]}',  # of one Date, the highest Id
        b'{"value": []}',
        b'{"value": [{"Id": 1, "Date": null}]}',
        b'{"value": [{"Id": 1}]}',  # no Date at all
        b'{"value": [{"Id": 1, "Date": 20240102}]}',  # a Date that is not text: the json module reads the page
        b'{"value": [{"Id": 1, "Date": "2024-01-02", "Comments": "\\ud800"}]}',  # a lone surrogate, likewise
        b'{"value": [{"Id": 1, "Date": "not a date"}, {"Id": 2, "Date": "2024-01-02"}]}',
    ],
)
def test_what_paging_reads_for_the_change_probe_is_what_the_landed_page_says(body):
    """The fact a page is landed with comes from the paging pass over it, not a second read of the page."""
    assert parse_answer(body).latest() == latest_row(body)


@requires_samples
def test_a_real_page_gives_the_change_probe_its_latest_row_in_the_paging_pass():
    body = sample("datacommonsorg_data__WSH_8.json").read_bytes()
    rows = json.loads(body)["value"]
    latest = max(rows, key=lambda row: (row["Date"], row["Id"]))  # one Date format in the sample: text order
    assert parse_answer(body).latest() == latest_row(body) == [latest["Date"], latest["Id"]]


def test_a_date_that_is_not_utf8_is_refused_as_before_never_a_crash():
    with pytest.raises(TransientAnswer) as refused:
        parse_answer(b'{"value": [{"Id": 1, "Date": "2024-01-02\xff"}]}')  # retried by the client
    assert "not valid JSON" in refused.value.reason


def test_an_encoded_surrogate_in_a_date_is_read_by_the_json_module_as_before():
    body = b'{"value": [{"Id": 1, "Date": "\xed\xa0\x80"}]}'
    page = parse_answer(body)
    assert (page.count, page.first_id, page.latest()) == (1, 1, UNKNOWN)  # no fact the probe could trust
    assert latest_row(body) == UNKNOWN


def test_a_page_put_with_its_fact_is_not_read_again(tmp_path):
    """And a dataset that is not probed asks for no fact at all."""
    read = []
    store = LocalFolder(tmp_path)
    writer = PageWriter(store, "facts", "b1", scan=lambda raw: read.append(raw) or ["2024-01-02", 9])
    writer.put("page-1.json", b'{"value": []}', {"pages": [{"file": "page-1.json"}]}, lambda: ["2025-01-01", 3])
    writer.put("page-2.json", b'{"value": []}', {"pages": [{"file": "page-2.json"}]})
    writer.close()
    assert writer.facts == {"page-1.json": ["2025-01-01", 3], "page-2.json": ["2024-01-02", 9]}
    assert read == [b'{"value": []}']  # only the page put without its fact
    asked = []
    unprobed = PageWriter(store, "facts", "b2")
    unprobed.put("page-1.json", b'{"value": []}', {"pages": [{"file": "page-1.json"}]}, lambda: asked.append(1))
    unprobed.close()
    assert unprobed.facts == {} and asked == []
