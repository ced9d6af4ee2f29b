"""The API's reference resources (the catalogue, the dimensions, a dimension's values), whole and checked.

GHO answers each in one response; a server that pages them with @odata.nextLink is followed, at most
MAX_PAGES answers, never off the API's origin and never twice to the same link. With a count the rows
received must equal it. Every text field is returned as published, HTML entities decoded
(`&amp;` -> `&`), NUL removed and lone surrogates replaced (PostgreSQL text holds neither).
"""

import html
import json

from src.errors import ExtractError, TransientAnswer
from src.sources.gho_odata.client import GhoClient

MAX_PAGES = 100
# The fields kept of each resource's rows, and the one that must be a code.
CATALOGUE_FIELDS = ("IndicatorCode", "IndicatorName", "Language")
DIMENSION_FIELDS = ("Code", "Title")
VALUE_FIELDS = ("Code", "Title", "Dimension", "ParentDimension", "ParentCode", "ParentTitle")
_TITLE_FIELDS = {"IndicatorName", "Title", "ParentTitle"}


def clean_text(value, decode_entities=False):
    """A string PostgreSQL can hold (no NUL, no lone surrogate), entities decoded for titles; else None."""
    if value is None or isinstance(value, bool):
        return None
    text = value if isinstance(value, str) else str(value)
    if decode_entities:
        text = html.unescape(text)
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


class ReferenceClient:
    """Reads reference resources through the same bounded, retried client the extract uses."""

    def __init__(self, settings, client=None):
        self.client = client or GhoClient(settings)

    def close(self):
        self.client.close()

    def rows(self, resource: str, fields, key: str, must_have_rows=False) -> list:
        """Every row of /api/<resource> as dicts of `fields` (text cleaned); rows without a `key` are dropped."""
        label = f"reference {resource}"
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
        return [_kept(row, fields) for row in rows if isinstance(row, dict) and _is_code(row.get(key))]


def _value(raw: bytes, label) -> list:
    try:
        return json.loads(raw)["value"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise ExtractError(f"{label}: the answer has no 'value' list") from None


def _is_code(value) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 200 and "\x00" not in value


def _kept(row, fields) -> dict:
    return {name: clean_text(row.get(name), decode_entities=name in _TITLE_FIELDS) for name in fields}
