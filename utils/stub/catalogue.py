"""The resources that are not indicator data: the /api/Indicator catalogue, /api/Dimension and each dimension's values.

They answer as GHO does whatever the mode, since the modes are about paging through indicator data. With the
samples (../shared/gho_samples) they serve the real catalogue, dimension list and the dimension values saved
there (COUNTRY, REGION, SEX, WORLDBANKINCOMEGROUP); a dimension listed without a saved sample answers with
no values, except GLOBAL and RESIDENCEAREATYPE, whose values are known (KNOWN_VALUES). Tests may set any
of them in `state.reference`.
"""

import re

from utils.odata import ODataError, apply_query
from utils.stub.query import count_asked
from utils.stub.wire import context_url, error_payload, invalid_query_payload

CATALOGUE_FIELDS = ("IndicatorCode", "IndicatorName", "Language")
DIMENSION_FIELDS = ("Code", "Title")
VALUE_FIELDS = ("Code", "Title", "Dimension", "ParentDimension", "ParentCode", "ParentTitle")
VALUES_PATH = re.compile(r"^DIMENSION/([^/]+)/DimensionValues$")
_NO_PARENT = {"ParentDimension": None, "ParentCode": None, "ParentTitle": None}
# Values GHO publishes that no sample holds, for dimensions the sampled indicators use.
KNOWN_VALUES = {
    "GLOBAL": [{"Code": "GLOBAL", "Title": "Global", "Dimension": "GLOBAL", **_NO_PARENT}],
    "RESIDENCEAREATYPE": [
        {"Code": f"RESIDENCEAREATYPE_{code}", "Title": title, "Dimension": "RESIDENCEAREATYPE", **_NO_PARENT}
        for code, title in (("RUR", "Rural"), ("URB", "Urban"), ("TOTL", "Total"))
    ],
}
FALLBACK_DIMENSIONS = (
    {"Code": "COUNTRY", "Title": "Country"},
    {"Code": "REGION", "Title": "WHO regions"},
    {"Code": "SEX", "Title": "Sex"},
    {"Code": "GLOBAL", "Title": "Global"},
    {"Code": "WORLDBANKINCOMEGROUP", "Title": "World Bank income group"},
)
FALLBACK_COUNTRY = {
    "Code": "AFG",
    "Title": "Afghanistan",
    "Dimension": "COUNTRY",
    "ParentDimension": "REGION",
    "ParentCode": "EMR",
    "ParentTitle": "Eastern Mediterranean",
}


def is_reference(resource) -> bool:
    """Whether GET /api/<resource> is one of these (not indicator data: no modes, no faults by count)."""
    return resource in ("Indicator", "Dimension") or bool(VALUES_PATH.match(resource))


def answer_resource(state, resource, params, origin):
    """(status, payload) for a resource that is not an indicator's data: 404 unless `is_reference`."""
    if resource == "Indicator":
        return _query(_catalogue(state), params, CATALOGUE_FIELDS, context_url(origin, resource))
    if resource == "Dimension":
        return _query(_dimensions(state), params, DIMENSION_FIELDS, context_url(origin, "DIMENSION"))
    match = VALUES_PATH.match(resource)
    if match and any(d["Code"] == match.group(1) for d in _dimensions(state)):
        context = context_url(origin, "Collection(Default.DIMENSION_VALUE)")
        return _query(_values(state, match.group(1)), params, VALUE_FIELDS, context)
    return 404, error_payload(f"No HTTP resource was found that matches '{resource}'.")


def _catalogue(state):
    if "Indicator" in state.reference:
        return state.reference["Indicator"]
    return state.library.catalogue() or [
        {"IndicatorCode": code, "IndicatorName": code, "Language": "EN"} for code in state.codes()
    ]


def _dimensions(state):
    if "Dimension" in state.reference:
        return state.reference["Dimension"]
    return state.library.dimensions() or list(FALLBACK_DIMENSIONS)


def _values(state, dimension):
    resource = f"DIMENSION/{dimension}/DimensionValues"
    if resource in state.reference:
        return state.reference[resource]
    saved = state.sample_values()
    if dimension in saved:
        return saved[dimension]
    if dimension == "COUNTRY" and not state.library.available:
        return [FALLBACK_COUNTRY]
    return KNOWN_VALUES.get(dimension, [])


def _query(rows, params, fields, context):
    """(status, payload) of an OData query over these rows; a bad query is a 400 as on GHO."""
    try:
        counted = count_asked(params)
        value = apply_query(rows, params, fields)
        count = len(apply_query(rows, {"$filter": params.get("$filter")}, fields)) if counted else None
    except ODataError as exc:
        return 400, invalid_query_payload(exc)
    payload = {"@odata.context": context}
    if counted:
        payload["@odata.count"] = count
    payload["value"] = value
    return 200, payload
