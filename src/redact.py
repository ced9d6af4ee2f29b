"""The one redaction path: every text that leaves the process passes through `redact`.

Secrets reach messages in more shapes than a URL parser knows: a password in
a URL that does not parse (a missing `]`, a bad `%`-escape, a space), a
fragment of it quoted by libpq ("invalid percent-encoded token: ..."), a
`password=` keyword or query parameter, credentials in the API's URL inside
an HTTP error. So masking works on the text, not on parsed URLs: the userinfo
of anything shaped like `scheme://user:password@` is masked, `password=`
keywords are masked, and every secret value the settings hold (`remember`),
raw and %-decoded, is replaced wherever it stands as a whole (not inside a
longer word, so a password such as "data" does not rewrite "datasets").
Structured output is redacted value by value before it is encoded
(`redact_values`), so JSON stays JSON and escaping cannot hide a secret.

The terminal (`src/commands/common.py`), the logs (`src/logs.py`),
`etl_runs` (`src/runner.py`), `status.py` and `utils/s3_backup.py` print
through here, and no file we write holds a credential (landing requests keep
URLs without them).
"""

import re
import threading
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
# Greedy up to the last "@" of the token, so a password holding "@", "/" or "]" is masked whole;
# "host:8080/path@x" is not userinfo (a port is digits, then "/" or the end).
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s/@:]*:)(?!\d+(?:/|\s|$))\S*@")
_KEYWORD = re.compile(r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&\"',;]+)")
_QUERY_PASSWORD = re.compile(r"(?i)[?&]password=([^&#]*)")
_URL_START = r"(?i)^\s*[a-z][a-z0-9+.\-]*://[^\s/@:]*:"
_MIN_SECRET = 3

_secrets = {}
_patterns = []  # the remembered secrets' patterns, longest first (a secret may hold another)
_lock = threading.Lock()


def url_passwords(url) -> list:
    """Every way the password of a URL's userinfo may be written, found by shape (the URL need not parse)."""
    if not isinstance(url, str):
        return []
    found = [m.group(1) for m in (re.match(_URL_START + "(.*?)@", url), re.match(_URL_START + "(.*)@", url)) if m]
    found += _QUERY_PASSWORD.findall(url)
    return found


def remember(*secrets) -> None:
    """Mask these values (and their %-decoded forms) in every text from now on."""
    with _lock:
        for secret in secrets:
            if not isinstance(secret, str):
                continue
            for form in {secret, unquote(secret), secret.strip("'")}:
                if len(form) >= _MIN_SECRET:
                    _secrets[form] = re.compile(r"(?<![A-Za-z0-9])" + re.escape(form) + r"(?![A-Za-z0-9])")
        _patterns[:] = [_secrets[s] for s in sorted(_secrets, key=len, reverse=True)]


def remember_settings(database_url=None, psql_password=None, api_base_url=None) -> None:
    """The secrets the configuration holds, whether or not its values are valid."""
    remember(*url_passwords(database_url), psql_password, *url_passwords(api_base_url))
    if isinstance(database_url, str):
        remember(*(m.group(2) for m in _KEYWORD.finditer(database_url)))


def redact(text) -> str:
    text = _URL_USERINFO.sub(lambda m: m.group(1) + MASK + "@", str(text))
    text = _KEYWORD.sub(lambda m: m.group(1) + MASK, text)
    with _lock:
        patterns = list(_patterns)
    for pattern in patterns:
        text = pattern.sub(MASK, text)
    return text


def redact_values(obj):
    """`obj` (dicts, lists, scalars) with every text value redacted; keys and other values kept."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {key: redact_values(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_values(value) for value in obj]
    return obj


def without_credentials(url: str) -> str:
    """The URL with no userinfo, for anything we store (a landing batch's request)."""
    parts = urlsplit(url)  # settings refuse an API URL that does not parse
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
