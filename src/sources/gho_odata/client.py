"""HTTP access to the GHO OData API: one session, bounded requests and retries, clear failures.

Every request is bounded whatever the server does:
- a wall-clock deadline (`GHO_HTTP_TIMEOUT`) covers the whole exchange, from
  connecting through redirects to the last byte, so a server that drips a byte
  at a time, anywhere, is cut off (`http_deadline`);
- a body larger than `GHO_MAX_PAGE_BYTES`, counted both as sent and as decoded,
  is refused while it is read, so an endless body or a gzip bomb never sits in
  memory (bodies are read and inflated 1 MiB at a time);
- redirects and `@odata.nextLink`s are followed only on the configured API's
  scheme, host and port: our requests and headers never go anywhere else.

Transient trouble (connection errors, deadlines, 429, 5xx, an empty or
unparseable body, an answer the caller's check calls short) is retried with
exponential backoff and jitter, honouring `Retry-After`; the backoff pauses every
request of the process to the API, and at most GHO_REQUESTS_IN_FLIGHT are on the
wire at once (`politeness`). Anything retrying
cannot fix (404, 400, other 4xx, a foreign link, a body over the limit) fails
at once with a message that names the indicator. Text the server wrote reaches
a message only through `printable`.
"""

import logging
import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from src.errors import ExtractError, IndicatorNotFound, SourceUnavailable, TransientAnswer
from src.sources.gho_odata.answer import Answer, parse_answer
from src.sources.gho_odata import politeness
from src.sources.gho_odata.http_deadline import Deadline, mount_deadline_adapters
from src.text import printable

log = logging.getLogger("gho_etl.api")

USER_AGENT = "gho-etl/1.0"
MAX_REDIRECTS = 5
# A body is read in pieces this large: requests' default (10 KiB) costs a Python
# call per piece, and urllib3 inflates at most this much per read.
_READ_CHUNK = 1 << 20
# Error bodies are only quoted, so only their start is read.
_ERROR_BODY_BYTES = 64 * 1024
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)
_DEFAULT_PORTS = {"http": 80, "https": 443}


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


def origin_of(url: str):
    """(scheme, host, port) of a URL; None when it has no usable origin."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port


class GhoClient:
    def __init__(self, settings, session=None):
        self.base_url = settings.api_base_url
        self.origin = origin_of(self.base_url)
        self.timeout = settings.http_timeout
        self.max_body_bytes = settings.page_bytes_limit
        self.max_attempts = settings.max_attempts
        self.backoff_base = settings.backoff_base
        self.backoff_max = settings.backoff_max
        self.page_concurrency = settings.page_concurrency
        self.polite = politeness.shared(self.origin, settings.requests_in_flight)
        # A connection kept for each request that may be on the wire at once (urllib3 keeps 10 by default).
        pool = max(10, settings.page_concurrency, settings.requests_in_flight)
        self.session = mount_deadline_adapters(session or requests.Session(), pool)
        self.session.headers.setdefault("User-Agent", USER_AGENT)
        self.session.headers["Accept"] = "application/json"

    def close(self):
        self.session.close()

    def indicator_url(self, indicator: str) -> str:
        return f"{self.base_url}/{indicator}"

    def follow(self, current_url: str, link: str, indicator: str, what="@odata.nextLink") -> str:
        """The absolute URL of a link found at `current_url`; ExtractError if it leaves the API's origin."""
        target = urljoin(current_url, link)
        if origin_of(target) != self.origin:
            scheme, host, port = self.origin
            raise ExtractError(
                f"indicator {indicator}: the API's {what} points outside {scheme}://{host}:{port} "
                f"({printable(target, 120)}); refusing to follow it"
            )
        return target

    def backoff(self, attempt, retry_after=None, indicator=""):
        """Seconds to wait before attempt `attempt + 1` (exponential, jittered, honouring Retry-After)."""
        return self._delay(attempt, retry_after, indicator)

    def get_answer(self, url: str, params: dict, indicator: str, check=None) -> Answer:
        """GET one page, retrying transient failures; raise ExtractError when it cannot.

        `check(page)` may raise TransientAnswer for an answer that is well formed but
        not believable (an empty page where the source counts rows): it is
        retried like any other transient failure.
        """
        for attempt in range(1, self.max_attempts + 1):
            try:
                with self.polite.slot():
                    page = self._get_once(url, params, indicator)
                if check is not None:
                    check(page)
                return page
            except TransientAnswer as problem:
                if attempt == self.max_attempts:
                    raise SourceUnavailable(
                        f"indicator {indicator}: giving up after {attempt} attempts: {problem.reason}"
                    ) from None
                delay = self._delay(attempt, problem.retry_after, indicator)
                self.polite.pause(delay)  # first: the next attempt, and every other request, waits it out
                log.warning(
                    "API trouble for %s (%s); retry %d of %d in %.1fs",
                    indicator,
                    problem.reason,
                    attempt,
                    self.max_attempts - 1,
                    delay,
                    extra={"indicator": indicator, "attempt": attempt, "delay_s": round(delay, 3)},
                )
        raise AssertionError("unreachable")

    def _delay(self, attempt, retry_after, indicator):
        backoff = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        jittered = backoff * random.uniform(0.5, 1.0)
        if retry_after is None:
            return jittered
        if retry_after > max(self.backoff_max, 1.0) * 5:
            raise SourceUnavailable(
                f"indicator {indicator}: the API asks to wait {retry_after:.0f}s (Retry-After), "
                f"far beyond GHO_BACKOFF_MAX={self.backoff_max:g}s; try again later"
            )
        return max(retry_after, jittered)

    def _get_once(self, url, params, indicator) -> Answer:
        """One answer, redirects followed, all of it within GHO_HTTP_TIMEOUT."""
        with Deadline(self.timeout) as deadline:
            try:
                body = self._exchange(url, params, indicator, deadline)
            except TransientAnswer:
                if deadline.expired:
                    raise self._late() from None
                raise
            if deadline.expired:  # the cut may have looked like the end of the body
                raise self._late()
        if not body.strip():
            raise TransientAnswer("empty response body")
        return parse_answer(body)

    def _late(self):
        return TransientAnswer(f"no complete answer within {self.timeout:g}s")

    def _exchange(self, url, params, indicator, deadline) -> bytes:
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(url, params, deadline, indicator)
            with response:
                status = response.status_code
                if status in _REDIRECT_STATUSES and response.headers.get("Location"):
                    url = self.follow(url, response.headers["Location"], indicator, what=f"HTTP {status} redirect")
                    params = None  # the Location carries the whole query
                    continue
                if status != 200:
                    body = self._read_body(response, deadline, _ERROR_BODY_BYTES, truncate=True)
                    raise self._refusal(status, response, body, url, indicator)
                return self._read_body(response, deadline, self.max_body_bytes, indicator=indicator)
        raise ExtractError(f"indicator {indicator}: more than {MAX_REDIRECTS} redirects in a row; refusing to go on")

    def _send(self, url, params, deadline, indicator):
        remaining = deadline.remaining()
        if remaining <= 0:
            raise self._late()
        try:
            return self.session.get(
                url, params=params, timeout=(remaining, remaining), stream=True, allow_redirects=False
            )
        except requests.Timeout:
            raise self._late() from None
        except requests.ConnectionError as exc:
            raise TransientAnswer(f"connection failed: {type(exc).__name__}") from None
        except requests.RequestException as exc:
            raise ExtractError(f"indicator {indicator}: request failed: {printable(exc)}") from None

    def _read_body(self, response, deadline, limit, truncate=False, indicator=""):
        """The decoded body, read within `deadline` and at most `limit` bytes (cut there if `truncate`)."""
        declared = response.headers.get("Content-Length", "")
        if not truncate and declared.isdigit() and int(declared) > limit:
            raise self._too_large(indicator, limit, f"its Content-Length says {int(declared)} bytes")
        raw = response.raw
        pieces, size = [], 0
        try:
            while True:
                if deadline.remaining() <= 0:
                    raise self._late()
                piece = raw.read1(_READ_CHUNK, decode_content=True)
                if not piece:
                    return b"".join(pieces)
                size += len(piece)
                if size > limit or raw.tell() > limit:
                    if truncate:
                        pieces.append(piece)
                        return b"".join(pieces)[:limit]
                    inflated = raw.tell() <= limit
                    raise self._too_large(
                        indicator,
                        limit,
                        "it inflates past that as it is decoded" if inflated else "more bytes than that arrived",
                    )
                pieces.append(piece)
        except urllib3.exceptions.ReadTimeoutError:
            raise self._late() from None
        except urllib3.exceptions.DecodeError:
            encoding = printable(response.headers.get("Content-Encoding", ""), 40)
            raise TransientAnswer(f"response body is not valid {encoding or 'encoded'} data") from None
        except (urllib3.exceptions.HTTPError, OSError):
            raise TransientAnswer("connection broken mid-response") from None

    def _too_large(self, indicator, limit, how):
        return ExtractError(
            f"indicator {indicator}: an answer exceeds GHO_MAX_PAGE_BYTES={limit} bytes ({how}): a flood, a "
            "decompression bomb or rows far longer than GHO's; if the rows really are that long, lower "
            "GHO_PAGE_SIZE or raise GHO_MAX_PAGE_BYTES"
        )

    def _refusal(self, status, response, body, url, indicator):
        reason = printable(response.reason or "", 60)
        if status == 429:
            return TransientAnswer("429 Too Many Requests", _retry_after_seconds(response.headers.get("Retry-After")))
        if status >= 500:
            return TransientAnswer(
                f"HTTP {status} {reason}".strip(), _retry_after_seconds(response.headers.get("Retry-After"))
            )
        if status == 404:
            return IndicatorNotFound(f"indicator {indicator} not found (HTTP 404 from {printable(url, 300)})")
        if status >= 400:
            return ExtractError(
                f"indicator {indicator}: the API refused the request (HTTP {status}): {printable(body, 160)}"
            )
        return ExtractError(f"indicator {indicator}: unexpected HTTP {status} {reason} from {printable(url, 300)}")
