"""GHO rows for the stand-in API: the real samples in ../shared/gho_samples, or generated ones.

The samples come in three shapes (see their PROVENANCE.md): raw OData JSON
envelopes, CSVs flattened with the API's own field names, and an export with
an alternative header. All three are turned back into the JSON rows the API
serves, with the API's field order and types.
"""

import csv
import json
import random
from datetime import datetime, timezone
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from src.contracts.schema import GHO_FIELDS  # noqa: E402

DEFAULT_SAMPLES_DIR = PROJECT_ROOT.parent / "shared" / "gho_samples"

FIELDS = GHO_FIELDS  # the API's field order
_INTEGER_FIELDS = {"Id", "TimeDim"}
_FLOAT_FIELDS = {"NumericValue", "Low", "High"}
# The alternative export header (format C) -> API field names.
_EXPORT_HEADER = {
    "SpatialDimension": "SpatialDimType",
    "SpatialDimensionValueCode": "SpatialDim",
    "TimeDimension": "TimeDimType",
    "DataSourceDimension": "DataSourceDimType",
    "DataSourceDimensionValueCode": "DataSourceDim",
}
for _n in (1, 2, 3):
    _EXPORT_HEADER[f"DisaggregatingDimension{_n}"] = f"Dim{_n}Type"
    _EXPORT_HEADER[f"DisaggregatingDimension{_n}ValueCode"] = f"Dim{_n}"

CATALOGUE_FILE = "ellenlodin_Data-mining-project__who_all_indicators.csv"
DIMENSIONS_FILE = "MM58-crypto_Public-Health-ETL-pipeline__dimensions.json"
DIMENSION_VALUE_FIELDS = ("Code", "Title", "Dimension", "ParentDimension", "ParentCode", "ParentTitle")


def _typed(field, text):
    if text == "":
        return None
    if field in _INTEGER_FIELDS:
        return int(float(text))
    if field in _FLOAT_FIELDS:
        return float(text)
    return text


def read_sample_csv(path: Path) -> list:
    """A flattened sample CSV (either header) -> API-shaped rows in the file's order."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = []
        for record in reader:
            named = {_EXPORT_HEADER.get(k, k): v for k, v in record.items()}
            row = {field: _typed(field, named[field]) for field in FIELDS if field in named}
            rows.append(row)
    return rows


def read_sample_json(path: Path) -> list:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)["value"]


class SampleLibrary:
    """Which sample files hold which indicator; files are read on first use."""

    def __init__(self, directory: Path = None):
        self.directory = Path(directory) if directory else DEFAULT_SAMPLES_DIR
        self.sources = {}  # indicator -> [path, ...], first is the default download
        if self.directory.is_dir():
            for path in sorted(self.directory.iterdir()):
                code = self._indicator_of(path)
                if code:
                    self.sources.setdefault(code, []).append(path)
            for paths in self.sources.values():
                # The yloughribi export is the reference download where there are two.
                paths.sort(key=lambda p: (not p.name.startswith("yloughribi"), p.name))

    @property
    def available(self) -> bool:
        return bool(self.sources)

    @staticmethod
    def _indicator_of(path: Path):
        if path.name == CATALOGUE_FILE:
            return None
        if path.suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                first = next(reader, None)
            return first.get("IndicatorCode") if first else None
        if path.suffix == ".json":
            try:
                rows = read_sample_json(path)
            except (ValueError, KeyError, TypeError):
                return None
            return rows[0].get("IndicatorCode") if rows and "IndicatorCode" in rows[0] else None
        return None

    def rows(self, indicator: str, download: int = 0) -> list:
        path = self.sources[indicator][download]
        return read_sample_json(path) if path.suffix == ".json" else read_sample_csv(path)

    def catalogue(self) -> list:
        path = self.directory / CATALOGUE_FILE
        if not path.exists():
            return []
        with open(path, newline="", encoding="utf-8") as handle:
            return [dict(r) for r in csv.DictReader(handle)]

    def dimensions(self) -> list:
        """The /api/Dimension rows (Code, Title), or [] without the sample."""
        path = self.directory / DIMENSIONS_FILE
        return read_sample_json(path) if path.exists() else []

    def dimension_values(self) -> dict:
        """Dimension code -> its /api/DIMENSION/{code}/DimensionValues rows, from the fullest sample of each."""
        found = {}
        if not self.directory.is_dir():
            return found
        for path in sorted(self.directory.glob("*.json")):
            try:
                rows = read_sample_json(path)
            except (ValueError, KeyError, TypeError):
                continue
            if rows and isinstance(rows[0], dict) and set(rows[0]) == set(DIMENSION_VALUE_FIELDS):
                dimension = rows[0]["Dimension"]
                if len(rows) > len(found.get(dimension, ())):
                    found[dimension] = rows
        return found


def generate_rows(indicator: str, count: int, seed: int = 1, vary_every: int = 0) -> list:
    """`count` GHO-shaped rows: countries x years x sexes, with published ranges.

    With `vary_every=k`, every k-th row's value is revised (+1.5) and carries a
    later `Date`, as WHO republishes: the same indicator a day later, for merge
    tests and the benchmark.
    """
    rng = random.Random(f"{indicator}:{seed}")
    sexes = ("SEX_MLE", "SEX_FMLE", "SEX_BTSX")
    regions = (("AFR", "Africa"), ("AMR", "Americas"), ("EUR", "Europe"), ("EMR", "Eastern Mediterranean"))
    published = datetime(2024, 8, 2, 9, 43, 39, tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")
    republished = datetime(2024, 8, 3, 9, 43, 39, tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")
    rows = []
    years_per_country = 60
    for position in range(count):
        country, rest = divmod(position, years_per_country * len(sexes))
        year_offset, sex = divmod(rest, len(sexes))
        year = 1960 + year_offset
        value = round(rng.uniform(40, 85), 5)
        spread = round(rng.uniform(0.2, 3), 5)
        low, high = round(value - spread, 5), round(value + spread, 5)
        revised = bool(vary_every) and position % vary_every == 0
        if revised:
            value = round(value + 1.5, 5)
        region_code, region = regions[country % len(regions)]
        rows.append(
            {
                "Id": position + 1,
                "IndicatorCode": indicator,
                "SpatialDimType": "COUNTRY",
                "SpatialDim": f"C{country:05d}",
                "ParentLocationCode": region_code,
                "ParentLocation": region,
                "TimeDimType": "YEAR",
                "TimeDim": year,
                "Dim1Type": "SEX",
                "Dim1": sexes[sex],
                "Dim2Type": None,
                "Dim2": None,
                "Dim3Type": None,
                "Dim3": None,
                "DataSourceDimType": None,
                "DataSourceDim": None,
                "Value": f"{value:.1f} [{low:.1f}-{high:.1f}]",
                "NumericValue": value,
                "Low": low,
                "High": high,
                "Comments": None,
                "Date": republished if revised else published,
                "TimeDimensionValue": str(year),
                "TimeDimensionBegin": f"{year}-01-01T00:00:00+01:00",
                "TimeDimensionEnd": f"{year}-12-31T00:00:00+01:00",
            }
        )
    return rows
