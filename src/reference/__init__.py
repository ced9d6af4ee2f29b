"""Reference data kept fresh: the indicator catalogue and the values of every dimension the datasets use.

`refresh` fetches `/api/Indicator`, `/api/Dimension` and, for each dimension in use (those the
configured datasets' tables hold, and always BASE_DIMENSIONS), its values, then replaces them in the
reference tables (`src.contracts.reference`) in one transaction. `refresh_if_due` does so after a
dataset's job (after all the jobs of a --once run, with one check) when the last refresh is older than
GHO_REFERENCE_HOURS, and adds the values of datasets it has not yet seen; a failure there is logged and
never fails the job, since the data itself is safe.
"""

import logging
import time
from dataclasses import dataclass, field

import psycopg2

from src.contracts import reference
from src.errors import GhoEtlError
from src.reference import store
from src.sources.gho_odata.reference import (
    CATALOGUE_FIELDS,
    DIMENSION_CODE,
    DIMENSION_FIELDS,
    INDICATOR_CODE,
    VALUE_FIELDS,
    ReferenceClient,
)

log = logging.getLogger("gho_etl.reference")

# Looked up whatever the tables hold: the location types GHO uses most, and the parents of countries.
BASE_DIMENSIONS = ("COUNTRY", "REGION", "GLOBAL", "WORLDBANKINCOMEGROUP", "SEX")


@dataclass
class RefreshResult:
    indicators: int = 0
    dimensions: int = 0
    values: dict = field(default_factory=dict)  # dimension -> values stored
    seconds: float = 0.0

    def summary(self) -> str:
        values = ", ".join(f"{code} {n}" for code, n in sorted(self.values.items()))
        return (
            f"reference: {self.indicators} indicators, {self.dimensions} dimensions, "
            f"values of {len(self.values)} ({values}), {self.seconds:.1f}s"
        )


def refresh(settings, database, client=None) -> RefreshResult:
    """Fetch the catalogue and the dimension values in use, and store them in one transaction."""
    started = time.monotonic()
    datasets = list(settings.datasets.values())
    own_client = client is None
    client = client or ReferenceClient(settings)
    try:
        with database.connection() as connection:
            used = store.dimensions_in_use(connection, datasets)
            held = store.value_counts(connection)
            catalogue = client.rows(reference.CATALOGUE, CATALOGUE_FIELDS, "IndicatorCode", True, INDICATOR_CODE)
            dimensions = client.rows(reference.DIMENSION_LIST, DIMENSION_FIELDS, "Code", True, DIMENSION_CODE)
            known = {row["Code"] for row in dimensions}
            wanted = sorted(code for code in set(BASE_DIMENSIONS) | set().union(*used.values()) if code in known)
            values = {code: _values(client, code, held) for code in wanted}
            counts = store.replace(connection, catalogue, dimensions, values, used)
    finally:
        if own_client:
            client.close()
    result = RefreshResult(counts["indicators"], counts["dimensions"], counts["values"])
    result.seconds = time.monotonic() - started
    log.info(result.summary(), extra={"indicators": result.indicators, "duration_s": round(result.seconds, 3)})
    return result


def _values(client, code, held) -> list:
    """A dimension's values; when some are stored already, an empty answer is retried, never stored."""
    return client.rows(reference.values_resource(code), VALUE_FIELDS, "Code", must_have_rows=held.get(code, 0) > 0)


def state(settings, database):
    """For status.py: what the reference holds and when a job refreshes it next, or None before a refresh."""
    with database.connection() as connection:
        found = store.summary(connection)
    if found is not None:
        found["refresh_hours"] = settings.reference_hours or None
    return found


def add_datasets(settings, database, datasets, client=None) -> RefreshResult:
    """Fetch the values of the dimensions only these datasets' tables bring (often none: no request)."""
    started = time.monotonic()
    own_client = client is None
    values = {}
    try:
        with database.connection() as connection:
            used = store.dimensions_in_use(connection, datasets)
            if not used:
                return RefreshResult()  # no table yet: nothing to look up
            known, fetched = store.stored_dimensions(connection)
            wanted = sorted(set().union(*used.values()) & known - fetched)
            client = client or ReferenceClient(settings)
            values = {code: _values(client, code, {}) for code in wanted}
            values = store.add_values(connection, values, used)
    finally:
        if own_client and client is not None:
            client.close()
    result = RefreshResult(values=values)
    result.seconds = time.monotonic() - started
    if values:
        names = ", ".join(sorted(used))
        log.info("reference: values of %s added for %s", ", ".join(values), names, extra={"datasets": names})
    return result


def refresh_if_due(settings, database, datasets):
    """After the jobs of `datasets` (one check for all): `refresh` when the reference is older than
    GHO_REFERENCE_HOURS, `add_datasets` for those it has not seen; the RefreshResult, or None. Never raises
    for the API or the database."""
    if settings.reference_hours <= 0 or not datasets:
        return None
    try:
        with database.connection() as connection:
            due = store.due(connection, [dataset.name for dataset in datasets], settings.reference_hours)
        if due == "full":
            return refresh(settings, database)
        if due:
            return add_datasets(settings, database, [dataset for dataset in datasets if dataset.name in due])
        return None
    except (GhoEtlError, psycopg2.Error) as exc:
        log.warning(
            "reference not refreshed (the labelled views keep the last names; run scripts/indicators.py refresh): %s",
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
        )
        return None
