"""The /_control/... endpoints, for a stand-in run as its own process (in-process tests use StubServer):
  POST /_control/faults          a fault object or a list: {"kind": "drip", "seconds": 0.5, "times": 1}
  POST /_control/mode            mode settings; only the keys given change: {"cap": 1000}
  GET  /_control/mode            the mode now
  POST /_control/after_requests  {"n": 2, "action": "delete_rows", "code": CODE, "ids": [1, 2]} or
                                 {"n": 2, "action": "insert_rows", "code": CODE, "rows": [{...}]}:
                                 change the data right after the n-th next data request
  POST /_control/indicators/CODE a JSON list of rows to serve for CODE
  POST /_control/reset           clears faults, the request log and pending actions; resets the mode
  GET  /_control/requests        the request log
  GET  /_control/in_flight       {"in_flight": n, "max_in_flight": m}: data requests being answered now, and
                                 the most at once since start-up or the last reset

Each endpoint returns (status, JSON object); the handler sends it.
"""

from utils.stub.wire import error_payload

ACTIONS = ("delete_rows", "insert_rows")
INDICATORS_PATH = "/_control/indicators/"


def control_get(state, path):
    """(status, payload) of GET `path`."""
    if path == "/_control/requests":
        return 200, state.request_log()
    if path == "/_control/mode":
        return 200, state.modes.now()
    if path == "/_control/in_flight":
        return 200, state.in_flight_now()
    return 404, error_payload("unknown control endpoint")


def control_post(state, path, body):
    """(status, payload) of POST `path` with the JSON `body`."""
    if path in _POSTS:
        return _POSTS[path](state, body)
    if path.startswith(INDICATORS_PATH):
        return _post_indicator(state, path.rsplit("/", 1)[-1], body)
    return 404, error_payload("unknown control endpoint")


def _post_faults(state, body):
    try:
        state.faults.add_posted(body if isinstance(body, list) else [body])
    except ValueError as exc:
        return 400, error_payload(str(exc))
    return 200, {"faults": len(state.faults.pending)}


def _post_mode(state, body):
    if not isinstance(body, dict):
        return 400, error_payload("body must be a JSON object of mode settings")
    try:
        return 200, state.modes.set(**body)
    except ValueError as exc:
        return 400, error_payload(str(exc))


def _post_after_requests(state, body):
    try:
        run = _action(state, body)
    except ValueError as exc:
        return 400, error_payload(str(exc))
    state.actions.add(body["n"], run)
    return 200, {"ok": True}


def _post_reset(state, body):
    state.reset()
    return 200, {"ok": True}


def _post_indicator(state, code, body):
    if not isinstance(body, list):
        return 400, error_payload("body must be a JSON list of rows")
    state.replace_rows(code, body)
    return 200, {"indicator": code, "rows": len(body)}


_POSTS = {
    "/_control/faults": _post_faults,
    "/_control/mode": _post_mode,
    "/_control/after_requests": _post_after_requests,
    "/_control/reset": _post_reset,
}


def _action(state, body):
    """The action of a POST /_control/after_requests body (raises ValueError)."""
    if not isinstance(body, dict) or body.get("action") not in ACTIONS:
        raise ValueError(f"body needs action, one of {', '.join(ACTIONS)}")
    n, code = body.get("n"), body.get("code")
    if isinstance(n, bool) or not isinstance(n, int) or not isinstance(code, str):
        raise ValueError("body needs n (an integer) and code (an indicator code)")
    if body["action"] == "delete_rows":
        ids = body.get("ids")
        if not isinstance(ids, list):
            raise ValueError("delete_rows needs ids, a list")
        return lambda: state.delete_rows(code, ids)
    rows = body.get("rows")
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ValueError("insert_rows needs rows, a list of objects")
    return lambda: state.insert_rows(code, rows)
