"""HTTP access to the GHO OData API: one session, bounded retries, clear failures.

Transient trouble (connection errors, timeouts, 429, 5xx, an empty or
unparseable body) is retried with exponential backoff and jitter, honouring
`Retry-After`. Anything retrying cannot fix (404, 400, other 4xx) fails at once
with a message that names the indicator.
"""

import json
import logging
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import Optional

import msgspec
import requests

from src.errors import ExtractError, IndicatorNotFound

log = logging.getLogger("gho_etl.api")

USER_AGENT = "gho-etl/1.0"


@dataclass
class Page:
    """One validated API response: the exact bytes it arrived as and its row count."""

    raw: bytes
    count: int
    next_link: str = None


class _PageShape(msgspec.Struct):
    """What paging needs from a response; each row is checked to be JSON but not decoded."""

    value: list[msgspec.Raw]
    next_link: Optional[str] = msgspec.field(default=None, name="@odata.nextLink")


_PAGE_DECODER = msgspec.json.Decoder(_PageShape)
# A body is read in pieces this large: requests' default (10 KiB) costs a Python call per piece.
_READ_CHUNK = 1 << 20


class _Retryable(Exception):
    def __init__(self, reason, retry_after=None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _retry_after_seconds(header):
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _excerpt(body: bytes, limit=160) -> str:
    text = body.decode("utf-8", "replace").strip().replace("\n", " ")
    return text[:limit] + ("..." if len(text) > limit else "")


def parse_page(body: bytes) -> Page:
    """Validate a response body as an OData page; raise _Retryable when it is not one.

    msgspec checks the JSON syntax and counts rows without building a Python
    object per value, at several hundred MB/s; typing the rows is the
    transform's job. The few bodies it turns down (a lone surrogate escape,
    which GHO text may hold, or no `value` list) and text that is not UTF-8 go
    through the json module, which accepts the first and words the error for
    the rest.
    """
    try:
        shape = _PAGE_DECODER.decode(body)
        if body.isascii() or _is_utf8(body):
            return Page(raw=body, count=len(shape.value), next_link=shape.next_link)
    except msgspec.DecodeError:
        pass
    try:
        payload = json.loads(body)
    except ValueError:
        raise _Retryable(f"response is not valid JSON ({len(body)} bytes: {_excerpt(body, 60)!r})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("value"), list):
        raise _Retryable("response JSON has no 'value' list")
    next_link = payload.get("@odata.nextLink")
    if next_link is not None and not isinstance(next_link, str):
        raise _Retryable("response's @odata.nextLink is not a link")
    return Page(raw=body, count=len(payload["value"]), next_link=next_link)


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class GhoClient:
    def __init__(self, settings, session=None, sleep=time.sleep):
        self.base_url = settings.api_base_url
        self.timeout = settings.http_timeout
        self.max_attempts = settings.max_attempts
        self.backoff_base = settings.backoff_base
        self.backoff_max = settings.backoff_max
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", USER_AGENT)
        self.session.headers["Accept"] = "application/json"
        self._sleep = sleep

    def close(self):
        self.session.close()

    def indicator_url(self, indicator: str) -> str:
        return f"{self.base_url}/{indicator}"

    def get_page(self, url: str, params: dict, indicator: str) -> Page:
        """GET one page, retrying transient failures; raise ExtractError when it cannot."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                return self._get_once(url, params, indicator)
            except _Retryable as problem:
                if attempt == self.max_attempts:
                    raise ExtractError(
                        f"indicator {indicator}: giving up after {attempt} attempts: {problem.reason}"
                    ) from None
                delay = self._delay(attempt, problem.retry_after, indicator)
                log.warning(
                    "API trouble for %s (%s); retry %d of %d in %.1fs",
                    indicator,
                    problem.reason,
                    attempt,
                    self.max_attempts - 1,
                    delay,
                    extra={"indicator": indicator, "attempt": attempt, "delay_s": round(delay, 3)},
                )
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _delay(self, attempt, retry_after, indicator):
        backoff = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        jittered = backoff * random.uniform(0.5, 1.0)
        if retry_after is None:
            return jittered
        if retry_after > max(self.backoff_max, 1.0) * 5:
            raise ExtractError(
                f"indicator {indicator}: the API asks to wait {retry_after:.0f}s (Retry-After), "
                f"far beyond GHO_BACKOFF_MAX={self.backoff_max:g}s; try again later"
            )
        return max(retry_after, jittered)

    def _get_once(self, url, params, indicator) -> Page:
        try:
            with self.session.get(url, params=params, timeout=self.timeout, stream=True) as response:
                body = b"".join(response.iter_content(_READ_CHUNK))
        except requests.Timeout:
            raise _Retryable(f"no answer within {self.timeout:g}s") from None
        except requests.ConnectionError as exc:
            raise _Retryable(f"connection failed: {type(exc).__name__}") from None
        except requests.exceptions.ChunkedEncodingError:
            raise _Retryable("connection broken mid-response") from None
        except requests.RequestException as exc:
            raise ExtractError(f"indicator {indicator}: request failed: {exc}") from None

        status = response.status_code
        if status == 429:
            raise _Retryable("429 Too Many Requests", _retry_after_seconds(response.headers.get("Retry-After")))
        if status >= 500:
            raise _Retryable(
                f"HTTP {status} {response.reason or ''}".strip(),
                _retry_after_seconds(response.headers.get("Retry-After")),
            )
        if status == 404:
            raise IndicatorNotFound(f"indicator {indicator} not found (HTTP 404 from {url})")
        if status >= 400:
            raise ExtractError(f"indicator {indicator}: the API refused the request (HTTP {status}): {_excerpt(body)}")
        if status != 200:
            raise ExtractError(f"indicator {indicator}: unexpected HTTP {status} from {url}")
        if not body.strip():
            raise _Retryable("empty response body")
        return parse_page(body)
