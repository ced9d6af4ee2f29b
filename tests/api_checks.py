"""What the stand-in saw: the API requests of a test and the paging step each one was."""

import re
from urllib.parse import parse_qs

_ID_BOUND = re.compile(r"Id gt (-?\d+)$")


def api_requests(stub) -> list:
    """The requests for indicator data and the catalogue (control requests left out)."""
    return [r for r in stub.requests if r["path"].startswith("/api/")]


def paging_step(request):
    """'first' (no Id bound), the Id bound N of a keyset request, or 'count' for the final count."""
    params = {k: v[-1] for k, v in parse_qs(request["query"], keep_blank_values=True).items()}
    if params.get("$top") == "0":
        return "count"
    bound = _ID_BOUND.search(params.get("$filter", ""))
    return int(bound.group(1)) if bound else "first"


def paging_steps(stub) -> list:
    return [paging_step(r) for r in api_requests(stub)]
