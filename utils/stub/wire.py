"""JSON as GHO writes it: one encoding, one error shape and one @odata.context form for every answer."""

import json

API_PREFIX = "/api"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def encode_json(obj) -> bytes:
    """UTF-8 JSON as GHO sends it; text that UTF-8 cannot hold (a lone surrogate) goes out as a \\u escape."""
    text = json.dumps(obj, ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj).encode("ascii")


def error_payload(message) -> dict:
    """GHO's error object, so clients parse the stand-in's errors as they parse the real ones."""
    return {"error": {"code": "", "message": message}}


def invalid_query_payload(exc) -> dict:
    """The 400 answer to a query GHO would refuse, with GHO's wording."""
    return error_payload(f"The query specified in the URI is not valid. {exc}")


def context_url(origin, context) -> str:
    """The @odata.context of an answer about `context` from the stand-in at `origin` (http://host:port)."""
    return f"{origin}{API_PREFIX}/$metadata#{context}"
