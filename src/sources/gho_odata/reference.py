"""The API's reference resources (the catalogue, the dimensions, a dimension's values), whole and checked.

GHO answers each in one response; a server that pages them with @odata.nextLink is followed, at most
MAX_PAGES answers, never off the API's origin and never twice to the same link. With a count the rows
received must equal it. Every text field is returned as published, HTML entities decoded
(`&amp;` -> `&`), NUL removed and lone surrogates replaced (PostgreSQL text holds neither).
"""

import html
import json
import re

from src.errors import ExtractError, TransientAnswer
from src.sources.gho_odata.client import GhoClient

MAX_PAGES = 100
# A code of a dimension value: visible characters, no path or query separators (a dimension's own code,
# which goes into a URL, is stricter: DIMENSION_CODE); an indicator's: as DATASET_CONFIG takes it.
CODE = re.compile(r"^[^\x00-\x20\x7f/?#%\\]{1,100}$")
DIMENSION_CODE = re.compile(r"^[A-Za-z0-9_]{1,100}$")
INDICATOR_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
# The fields kept of each resource's rows, and the one that must be a code.
CATALOGUE_FIELDS = ("IndicatorCode", "IndicatorName", "Language")
DIMENSION_FIELDS = ("Code", "Title")
VALUE_FIELDS = ("Code", "Title", "Dimension", "ParentDimension", "ParentCode", "ParentTitle")
_TITLE_FIELDS = {"IndicatorName", "Title", "ParentTitle"}


def clean_text(value, decode_entities=False):
    """A string PostgreSQL can hold (no NUL, no lone surrogate), entities decoded for titles; None for a
    value that is not text (a number, an object: never its repr)."""
    if not isinstance(value, str):
        return None
    text = value
    if decode_entities:
        text = html.unescape(text)
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


class ReferenceClient:
    """Reads reference resources through the same bounded, retried client the extract uses."""

    def __init__(self, settings, client=None):
        self.client = client or GhoClient(settings)

    def close(self):
        self.client.close()

    def rows(self, resource: str, fields, key: str, must_have_rows=False, code=CODE) -> list:
        """Every row of /api/<resource> as dicts of `fields` (text cleaned); rows whose `key` is not a `code`
        are dropped. `must_have_rows`: an empty answer is GHO's transient failure, retried."""
        label = f"{resource} (reference data)"
        url, params = f"{self.client.base_url}/{resource}", {"$count": "true"}
        rows, count, visited = [], None, set()

        def believable(answer):
            if must_have_rows and answer.count == 0 and not rows:
                raise TransientAnswer("the API answered no rows")  # GHO's known transient empty answer

        for _ in range(MAX_PAGES):
            answer = self.client.get_answer(url, params, label, check=believable)
            rows.extend(_value(answer.raw, label))
            count = answer.source_count if count is None else count
            if not answer.next_link:
                break
            url, params = self.client.follow(url, answer.next_link, label), None
            if url in visited:
                raise ExtractError(f"{label}: the API's @odata.nextLink leads back to a page it already sent")
            visited.add(url)
        else:
            raise ExtractError(f"{label}: more than {MAX_PAGES} pages")
        if count is not None and len(rows) != count:
            raise ExtractError(f"{label}: {len(rows)} rows received, the API counts {count}")
        return [_kept(row, fields) for row in rows if isinstance(row, dict) and _is_code(row.get(key), code)]


def _value(raw: bytes, label) -> list:
    try:
        return json.loads(raw)["value"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise ExtractError(f"{label}: the answer has no 'value' list") from None


def _is_code(value, pattern) -> bool:
    return isinstance(value, str) and bool(pattern.match(value))


def _kept(row, fields) -> dict:
    return {name: clean_text(row.get(name), decode_entities=name in _TITLE_FIELDS) for name in fields}
