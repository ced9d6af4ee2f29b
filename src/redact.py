"""The one redaction path: every text that leaves the process passes through `redact`.

Secrets reach messages in more shapes than a URL parser knows: a password in
a URL that does not parse (a missing `]`, a bad `%`-escape), a fragment of it
quoted by libpq ("invalid percent-encoded token: ..."), a `password=` keyword,
credentials in the API's URL inside an HTTP error. So masking works on the
text, not on parsed URLs: the userinfo of anything shaped like `scheme://user:
password@` is masked, `password=` keywords are masked, and every secret value
the settings hold (`remember`), raw and %-decoded, is replaced wherever it
appears. The terminal (`src/commands/common.py`), the logs (`src/logs.py`),
`etl_runs` (`src/runner.py`) and `status.py` all print through here, and no
file we write holds a credential (landing requests keep URLs without them).
"""

import re
import threading
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
# Greedy up to the last "@" of the token, so a password holding "@", "/" or "]" is masked whole.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s/@:]*:)\S*@")
_KEYWORD = re.compile(r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")
_MIN_SECRET = 3

_secrets = set()
_lock = threading.Lock()


def url_password(url) -> str:
    """The password in a URL's userinfo, found by its shape (the URL need not parse); "" when there is none."""
    if not isinstance(url, str):
        return ""
    match = re.match(r"(?i)^\s*[a-z][a-z0-9+.\-]*://[^\s/@:]*:(\S*)@", url)
    return match.group(1) if match else ""


def remember(*secrets) -> None:
    """Mask these values (and their %-decoded forms) in every text from now on."""
    with _lock:
        for secret in secrets:
            if isinstance(secret, str) and len(secret) >= _MIN_SECRET:
                _secrets.add(secret)
                decoded = unquote(secret)
                if len(decoded) >= _MIN_SECRET:
                    _secrets.add(decoded)


def remember_settings(database_url=None, psql_password=None, api_base_url=None) -> None:
    """The secrets the configuration holds, whether or not its values are valid."""
    remember(url_password(database_url), psql_password, url_password(api_base_url))
    if isinstance(database_url, str):
        remember(*(m.group(2).strip("'") for m in _KEYWORD.finditer(database_url)))


def redact(text) -> str:
    text = _URL_USERINFO.sub(lambda m: m.group(1) + MASK + "@", str(text))
    text = _KEYWORD.sub(lambda m: m.group(1) + MASK, text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # longest first: a secret may contain another
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def without_credentials(url: str) -> str:
    """The URL with no userinfo, for anything we store (a landing batch's request)."""
    parts = urlsplit(url)  # settings refuse an API URL that does not parse
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
