"""Modes: how indicator data (/api/<CODE>, not /api/Indicator or the DIMENSION endpoint) is answered, until reset.

By default the stand-in answers as GHO does: every row asked for in one answer, no server paging. The
modes play the other servers a client must survive:
  cap=N               at most N rows an answer and never a nextLink ($top above N is ignored)
  ignore_skip=true    $skip is ignored
  ignore_keyset=true  a trailing `Id gt N` bound of $filter is ignored ($skip is honoured)
  ignore_upper_bound=true  a trailing `Id le M` bound of $filter (after `Id gt N`) is ignored
  no_count=true       $count is ignored
  ignore_orderby=true, ignore_select=true, ignore_top=true   $orderby, $select or $top is ignored
  max_page_size=N     server paging: N rows an answer and an @odata.nextLink to the rest
  cycle_links=true    (with max_page_size) the second piece's nextLink points back to the first
  next_link_base=URL  nextLinks are built on this base (e.g. http://127.0.0.1:PORT/api)
  link_style=relative nextLinks are relative references (`WHOSIS_000001?%24skip=...`)
  latency=S           every answer waits S seconds (a float >= 0) first: a far, latency-bound server
"""

import math

DEFAULT_MODE = {
    "cap": None,
    "ignore_skip": False,
    "ignore_keyset": False,
    "ignore_upper_bound": False,
    "no_count": False,
    "ignore_orderby": False,
    "ignore_select": False,
    "ignore_top": False,
    "max_page_size": None,
    "cycle_links": False,
    "next_link_base": None,
    "link_style": "absolute",
    "latency": 0.0,
}


def validate_mode(settings) -> dict:
    """Checked mode settings (raises ValueError naming the bad one)."""
    clean = {}
    for key, value in settings.items():
        if key not in DEFAULT_MODE:
            raise ValueError(f"unknown mode setting {key!r}; one of {', '.join(DEFAULT_MODE)}")
        if key in ("cap", "max_page_size"):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{key} must be a positive integer or null, not {value!r}")
        elif key == "next_link_base":
            if value is not None and not (isinstance(value, str) and value.startswith(("http://", "https://"))):
                raise ValueError(f"next_link_base must be an http(s) URL or null, not {value!r}")
            value = value.rstrip("/") if value else None
        elif key == "latency":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"latency must be a number of seconds >= 0, not {value!r}")
            value = float(value)
        elif key == "link_style":
            if value not in ("absolute", "relative"):
                raise ValueError(f"link_style must be 'absolute' or 'relative', not {value!r}")
        elif not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, not {value!r}")
        clean[key] = value
    return clean


class Modes:
    """The mode now, the one reset returns to, and the cycle_links chains, which a mode change forgets."""

    def __init__(self, lock):
        self.lock = lock  # the state's lock, shared with the handler threads
        self.current = dict(DEFAULT_MODE)
        self.startup = dict(DEFAULT_MODE)  # what reset returns to (the command line's settings)
        self.chain_parents = {}  # (code, query of a second piece) -> the first piece's URL (cycle_links)

    def set(self, **settings) -> dict:
        """Change only the settings given (raises ValueError); return the mode now."""
        clean = validate_mode(settings)
        with self.lock:
            self.current.update(clean)
            self.chain_parents.clear()
            return dict(self.current)

    def reset(self):
        with self.lock:
            self.current = dict(self.startup)
            self.chain_parents.clear()

    def now(self) -> dict:
        """A copy, so an answer keeps one mode even if the mode changes meanwhile."""
        with self.lock:
            return dict(self.current)
