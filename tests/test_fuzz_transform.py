"""Fuzz the transform with generated GHO rows (hypothesis).

Each generated field value carries the verdict an independent oracle gives it
(valid, or a reason it must be rejected). The transform must never raise, must
reject exactly the rows the oracle rejects, keep every other row, and produce
staging that Arrow and PostgreSQL can store (no NUL byte, valid Unicode).
"""

import json
import os
from datetime import datetime, timedelta, timezone

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from src.contracts import schema
from src.transform.arrow_page import NotFast, type_page
from src.transform.rules import column_names, records_to_frame, to_arrow
from src.storage.local import LocalFolder
from src.transform.rejects import RejectsFile

GOOD, BAD = True, False
TEXT_FIELDS = [f for f in schema.GHO_FIELDS if schema.snake_case(f) in schema.TEXT_COLUMNS]
REQUIRED_FIELDS = {f for f in schema.GHO_FIELDS if schema.snake_case(f) in schema.REQUIRED}
NASTY_TEXT = [
    "",
    "   ",
    "No data",
    "a\x00b",
    "\ud800 lone",
    "é 漢字 🙂",
    "x" * 3000,
    "63.2 [62.1-64.0]",
    "'; DROP TABLE y; --",
]


def _text_verdict(text, required):
    if "\x00" in text:
        return BAD
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return BAD
    return not required or bool(text.strip())


def text_values(required):
    plain = st.text(max_size=30) | st.sampled_from(NASTY_TEXT)
    return st.one_of(
        st.none().map(lambda v: (v, not required)),
        plain.map(lambda t: (t, _text_verdict(t, required))),
        st.integers(-(10**6), 10**6).map(lambda v: (v, GOOD)),
        st.booleans().map(lambda v: (v, GOOD)),
    )


integer_values = st.one_of(
    st.none().map(lambda v: (v, GOOD)),
    st.integers(-(2**31) + 1, 2**31 - 1).map(lambda v: (v, GOOD)),
    st.integers(2**31, 2**40).map(lambda v: (v, BAD)),
    st.integers(1900, 2100).map(lambda v: (str(v), GOOD)),
    st.integers(1900, 2100).map(lambda v: (float(v), GOOD)),
    st.sampled_from(["abc", "", "20x0", "1.5"]).map(lambda v: (v, BAD)),
    st.just(1.5).map(lambda v: (v, BAD)),
    st.booleans().map(lambda v: (v, BAD)),
)

number_values = st.one_of(
    st.none().map(lambda v: (v, GOOD)),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda v: (v, GOOD)),
    st.integers(-(10**12), 10**12).map(lambda v: (v, GOOD)),
    st.sampled_from(["12.5", "1e3", "-0"]).map(lambda v: (v, GOOD)),
    st.sampled_from(["abc", "nan", "inf", "", "No data"]).map(lambda v: (v, BAD)),
    st.booleans().map(lambda v: (v, BAD)),
)

id_values = st.one_of(
    st.none().map(lambda v: (v, GOOD)),
    st.integers(0, 2**53).map(lambda v: (v, GOOD)),
    st.integers(2**54, 2**62).map(lambda v: (v, BAD)),
    st.just("x").map(lambda v: (v, BAD)),
)


def _iso(moment, style):
    if style == "Z":
        return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return moment.isoformat()


date_values = st.one_of(
    st.none().map(lambda v: (v, GOOD)),
    st.builds(
        _iso,
        st.datetimes(
            datetime(1950, 1, 1),
            datetime(2090, 1, 1),
            timezones=st.sampled_from(
                [timezone.utc, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
            ),
        ),
        st.sampled_from(["Z", "offset"]),
    ).map(lambda v: (v, GOOD)),
    st.dates(datetime(1950, 1, 1).date(), datetime(2090, 1, 1).date()).map(lambda d: (d.isoformat(), GOOD)),
    st.sampled_from(["abc", "2020-13-45", "", "yesterday", "2020-02-30"]).map(lambda v: (v, BAD)),
)

extra_values = st.one_of(
    st.none().map(lambda v: (v, GOOD)),
    st.integers().map(lambda v: (v, GOOD)),
    st.lists(st.integers(), max_size=3).map(lambda v: (v, GOOD)),
    (st.text(max_size=10) | st.sampled_from(NASTY_TEXT)).map(lambda t: (t, _text_verdict(t, False))),
)

FIELD_STRATEGIES = {
    **{name: text_values(name in REQUIRED_FIELDS) for name in TEXT_FIELDS},
    "Id": id_values,
    "TimeDim": integer_values,
    "NumericValue": number_values,
    "Low": number_values,
    "High": number_values,
    "Date": date_values,
    "TimeDimensionBegin": date_values,
    "TimeDimensionEnd": date_values,
    "NewField": extra_values,
}


@st.composite
def records(draw):
    """(record, verdict): a GHO row with some fields missing, or now and then not an object at all."""
    if draw(st.integers(0, 30)) == 0:
        return draw(st.sampled_from([[], "row", 42, None])), BAD
    record, verdict = {}, GOOD
    for name, strategy in FIELD_STRATEGIES.items():
        if name == "NewField" and draw(st.booleans()):
            continue
        if name not in REQUIRED_FIELDS and draw(st.integers(0, 9)) == 0:
            continue  # a vanished field
        value, ok = draw(strategy)
        record[name] = value
        verdict = verdict and ok
    return record, verdict and _key_fits(record)


KEY_TEXT_FIELDS = [f for f in schema.GHO_FIELDS if schema.snake_case(f) in schema.NATURAL_KEY_TEXT]


def _key_fits(record) -> bool:
    """The oracle's own reading of the index rule: the key's text, as stored, within the bound."""

    def stored(value):
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    size = sum(len(stored(record.get(field)).encode("utf-8", "surrogatepass")) for field in KEY_TEXT_FIELDS)
    return size <= schema.NATURAL_KEY_MAX_BYTES


@settings(
    max_examples=int(os.environ.get("GHO_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(records(), min_size=1, max_size=12))
def test_transform_never_crashes_and_rejects_exactly_the_bad_rows(tmp_path_factory, generated):
    rows = [record for record, _ in generated]
    frame, rejected = records_to_frame(rows)
    rejected_ids = {id(record) for record, _ in rejected}
    expected_bad = {id(record) for record, ok in generated if not ok}
    wrongly_kept = [r for r, ok in generated if not ok and id(r) not in rejected_ids]
    wrongly_rejected = [(r, reason) for r, reason in rejected if id(r) not in expected_bad]
    assert not wrongly_kept, f"kept rows the oracle rejects: {wrongly_kept!r}"
    assert not wrongly_rejected, f"rejected good rows: {wrongly_rejected!r}"
    assert len(frame) + len(rejected) == len(rows)
    assert all(isinstance(reason, str) and reason for _, reason in rejected)

    table = to_arrow(frame)  # what staging stores
    for column in table.column_names:
        if pa.types.is_string(table.schema.field(column).type):
            values = [v for v in table.column(column).to_pylist() if v is not None]
            assert not any("\x00" in v for v in values)
            for v in values:
                v.encode("utf-8")
    assert table.column("time_dim").type == schema.CORE_COLUMNS["time_dim"][0]
    # The fast path (what the transform tries first) takes a page only if every row is good,
    # and then gives exactly the reference result.
    names = column_names(list(dict.fromkeys(k for r in rows if isinstance(r, dict) for k in r)))
    extra = sorted(n for n in names.values() if n not in schema.CORE_COLUMNS)
    try:
        fast = type_page(json.dumps({"value": rows}).encode(), extra)
    except NotFast:
        pass
    else:
        assert not expected_bad, "the fast path accepted a page with a row to reject"
        assert fast.equals(to_arrow(frame).select(schema.arrow_schema(extra).names))
    store = LocalFolder(tmp_path_factory.mktemp("rejects"))
    rejects = RejectsFile(store, "rejects.jsonl", "b1")
    rejects.add(rejected)
    rejects.commit()
    path = store.root / "rejects.jsonl"
    assert path.exists() == bool(rejected)
    lines = path.read_text(encoding="utf-8").splitlines() if rejected else []
    assert [json.loads(line)["reason"] for line in lines] == [reason for _, reason in rejected]
