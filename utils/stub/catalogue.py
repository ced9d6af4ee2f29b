"""The resources that are not indicator data: the /api/Indicator catalogue and the country dimension values.

They answer as GHO does whatever the mode, since the modes are about paging through indicator data.
"""

from utils.odata import ODataError, apply_query
from utils.stub.query import count_asked
from utils.stub.wire import context_url, error_payload, invalid_query_payload

META_RESOURCES = ("Indicator", "DIMENSION/COUNTRY/DimensionValues")  # not indicator data: no modes
CATALOGUE_FIELDS = ("IndicatorCode", "IndicatorName", "Language")
COUNTRY_VALUES = (
    {
        "Code": "AFG",
        "Title": "Afghanistan",
        "Dimension": "COUNTRY",
        "ParentDimension": "REGION",
        "ParentCode": "EMR",
        "ParentTitle": "Eastern Mediterranean",
    },
)


def answer_resource(state, resource, params, origin):
    """(status, payload) for a resource that is not an indicator's data: 404 unless it is one of META_RESOURCES."""
    if resource == "Indicator":
        catalogue = state.library.catalogue() or [
            {"IndicatorCode": code, "IndicatorName": code, "Language": "EN"} for code in state.codes()
        ]
        return _query(catalogue, params, CATALOGUE_FIELDS, context_url(origin, resource))
    if resource == "DIMENSION/COUNTRY/DimensionValues":
        context = context_url(origin, "Collection(Default.DIMENSION_VALUE)")
        return _query(list(COUNTRY_VALUES), params, tuple(COUNTRY_VALUES[0]), context)
    return 404, error_payload(f"No HTTP resource was found that matches '{resource}'.")


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
