"""Finding indicators: the loaded catalogue (`gho_indicators`) when there is one, else the API's.

The API's catalogue is fetched whole (about 3,000 rows, one answer) and searched here, so a search
behaves the same whatever the server's `$filter` functions and their case rules.
"""

import json
import re

import psycopg2
from psycopg2 import sql

from src.contracts import reference
from src.db import Database
from src.errors import GhoEtlError, IndicatorNotFound
from src.sources.gho_odata.reference import CATALOGUE_FIELDS, DIMENSION_FIELDS, ReferenceClient

# Rows read to tell which dimensions an indicator uses (they rarely vary within one).
DIMENSION_SAMPLE_ROWS = 1000
TYPE_FIELDS = ("SpatialDimType", "Dim1Type", "Dim2Type", "Dim3Type", "DataSourceDimType")


def matches(rows, text) -> list:
    """(code, name) of the rows whose code or name holds every word of `text` (any case), codes first."""
    words = [w.lower() for w in re.split(r"\s+", text.strip()) if w]
    found = [(code, name or "") for code, name in rows if all(w in f"{code} {name or ''}".lower() for w in words)]
    return sorted(found, key=lambda row: (not all(w in row[0].lower() for w in words), row[0]))


class Catalogue:
    """Reads the catalogue from the database when loaded there, else from the API (`source` says which)."""

    def __init__(self, settings):
        self.settings = settings
        self.database = Database(settings)
        self.source = None
        self._rows = None
        self._client = None

    def close(self):
        if self._client is not None:
            self._client.close()

    @property
    def client(self) -> ReferenceClient:
        if self._client is None:
            self._client = ReferenceClient(self.settings)
        return self._client

    def rows(self) -> list:
        """[(code, name)] of every indicator."""
        if self._rows is None:
            self._rows = self._loaded()
            if self._rows:
                self.source = "the loaded catalogue (gho_indicators)"
            else:
                rows = self.client.rows(reference.CATALOGUE, CATALOGUE_FIELDS, "IndicatorCode", must_have_rows=True)
                self._rows = [(row["IndicatorCode"], row["IndicatorName"]) for row in rows]
                self.source = "the API's catalogue"
        return self._rows

    def _loaded(self) -> list:
        try:
            connection = self.database.connect()
        except (GhoEtlError, psycopg2.Error):
            return []  # no database yet: the API answers
        try:
            with connection, connection.cursor() as cursor:
                if not reference.tables_exist(cursor, connection.schema):
                    return []
                table = reference.names(connection.schema)["indicators"]
                cursor.execute(sql.SQL("SELECT indicator_code, indicator_name FROM {}").format(table))
                return cursor.fetchall()
        except psycopg2.Error:
            return []
        finally:
            connection.close()

    def name_of(self, code):
        """The indicator's name, or None when the catalogue does not list the code."""
        return dict(self.rows()).get(code)

    def row_count(self, code):
        """Rows the API holds for the indicator (`$count`), or None when it does not know the code."""
        url = f"{self.client.client.base_url}/{code}"
        try:
            answer = self.client.client.get_answer(url, {"$top": "0", "$count": "true"}, code)
        except IndicatorNotFound:
            return None
        return answer.source_count

    def dimensions_used(self, code) -> tuple:
        """(sorted dimension codes seen, rows looked at) in the indicator's first DIMENSION_SAMPLE_ROWS rows."""
        url = f"{self.client.client.base_url}/{code}"
        params = {"$top": str(DIMENSION_SAMPLE_ROWS), "$select": ",".join(TYPE_FIELDS), "$orderby": "Id"}
        answer = self.client.client.get_answer(url, params, code)
        rows = [row for row in json.loads(answer.raw).get("value", []) if isinstance(row, dict)]
        used = {row.get(field) for row in rows for field in TYPE_FIELDS}
        return sorted(c for c in used if isinstance(c, str) and c), len(rows)

    def dimension_titles(self) -> dict:
        """Dimension code -> title, from the API's dimension list ({} when it cannot be read)."""
        try:
            rows = self.client.rows(reference.DIMENSION_LIST, DIMENSION_FIELDS, "Code")
        except GhoEtlError:
            return {}
        return {row["Code"]: row["Title"] for row in rows}
