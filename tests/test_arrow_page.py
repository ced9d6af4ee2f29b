"""The Arrow fast path gives exactly what the reference rules give, on every page it accepts."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from src.contracts import schema
from src.transform.arrow_page import NotFast, type_page
from src.transform.rules import column_names, records_to_frame, to_arrow
from tests.helpers import SAMPLES_DIR, requires_samples
from utils.gho_samples import SampleLibrary, generate_rows


def _page(rows) -> bytes:
    return json.dumps({"@odata.context": "x", "value": rows}, ensure_ascii=False).encode("utf-8")


def _extra(rows):
    names = column_names(list(dict.fromkeys(k for r in rows if isinstance(r, dict) for k in r)))
    return sorted(n for n in names.values() if n not in schema.CORE_COLUMNS)


def _reference(rows, extra):
    frame, rejected = records_to_frame(rows)
    assert rejected == []
    table = to_arrow(frame)
    return table.select(schema.arrow_schema(extra).names) if extra else table


def test_generated_rows_take_the_fast_path_and_match():
    rows = generate_rows("WHOSIS_000001", 5000)
    rows[7]["Low"] = rows[7]["High"] = None  # a range to read from "Value"
    rows[8].update(Low=None, High=None, NumericValue=None, Value="1 234 [1 000-2 000]")
    assert type_page(_page(rows), []).equals(_reference(rows, []))


@requires_samples
@pytest.mark.parametrize("code", ["WHOSIS_000001", "WHOSIS_000015", "WSH_8", "EMFLIMITELECTRIC"])
def test_real_samples_take_the_fast_path_and_match(code):
    library = SampleLibrary(SAMPLES_DIR)
    if code not in library.sources:
        pytest.skip(f"no sample of {code} in {SAMPLES_DIR}")
    rows = library.rows(code)
    extra = _extra(rows)
    assert type_page(_page(rows), extra).equals(_reference(rows, extra))


@pytest.mark.parametrize(
    "change",
    [
        {"TimeDim": "abc"},
        {"TimeDim": "2000"},
        {"SpatialDim": None},
        {"SpatialDim": "\u2003"},
        {"Comments": "nul\x00"},
        {"Comments": "\ud800"},
        {"Date": "yesterday"},
        {"NumericValue": "12.5"},
        {"Dim1": 5},
    ],
)
def test_anything_unusual_goes_to_the_reference_rules(change):
    rows = generate_rows("WHOSIS_000001", 20)
    rows[3].update(change)
    with pytest.raises(NotFast):
        type_page(json.dumps({"value": rows}).encode(), [])


_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
_required = _text.filter(lambda t: t.strip())
_dates = st.one_of(
    st.none(),
    st.dates().map(lambda d: d.isoformat()),
    st.sampled_from(["2010-01-01T00:00:00+01:00", "2013-06-11T14:01:25.3+02:00", "2024-08-02T09:43:39Z"]),
)


@st.composite
def api_rows(draw):
    """Rows as the API sends them: text as text, numbers as numbers, dates as ISO strings."""
    row = {}
    for field in schema.GHO_FIELDS:
        column = schema.snake_case(field)
        if column in schema.REQUIRED:
            row[field] = draw(_required)
        elif column == "id":
            row[field] = draw(st.none() | st.integers(0, 2**53))
        elif column == "time_dim":
            row[field] = draw(st.none() | st.integers(-(2**31) + 1, 2**31 - 1))
        elif column in schema.FLOAT_COLUMNS:
            row[field] = draw(st.none() | st.floats(allow_nan=False, allow_infinity=False))
        elif column in schema.INSTANT_COLUMNS + schema.PERIOD_COLUMNS:
            row[field] = draw(_dates)
        elif column == "value":
            row[field] = draw(st.none() | _text | st.sampled_from(["63.2 [62.1-64.0]", "1 234 [1 000–2 000]"]))
        elif draw(st.integers(0, 5)):
            row[field] = draw(st.none() | _text)
    if draw(st.booleans()):
        row["NewField"] = draw(st.none() | _text)
    return row


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(api_rows(), min_size=1, max_size=10))
def test_fast_path_takes_api_shaped_pages_and_equals_reference(rows):
    extra = _extra(rows)
    assert type_page(_page(rows), extra).equals(_reference(rows, extra))
