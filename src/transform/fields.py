"""Which columns a landing batch needs: the GHO core, plus a text column per field outside it."""

from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.json as pajson

from src.contracts import schema
from src.errors import TransformError
from src.transform.arrow_page import read_page_table
from src.transform.pages import page_records
from src.transform.rules import column_names

_FIELD_SCAN_OPTIONS = pajson.ParseOptions(newlines_in_values=True)


def page_fields(page_bytes) -> list:
    """The field names of a landing page's rows, read by Arrow (no Python object per value)."""
    where, raw = page_bytes
    try:
        table = read_page_table(raw, _FIELD_SCAN_OPTIONS)
        row_type = table.schema.field("value").type.value_type
        if table.num_rows == 1 and pa.types.is_struct(row_type):
            return [row_type.field(i).name for i in range(row_type.num_fields)]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError, AttributeError):
        pass  # rows of mixed shapes or types: the json module reads those
    return [str(k) for r in page_records(where, raw) if isinstance(r, dict) for k in r]


def extra_columns(pages, read_page, threads) -> list:
    """The batch's extra columns: fields outside the GHO core, which become text columns.

    Extract does not record field names (that would parse every page twice),
    so transform first takes a batch to hold core fields only, and calls this
    once a page shows a field it did not expect: every page's field names are
    read (`read_page(entry)` gives its location and bytes) on `threads` threads.
    """
    fields = {}
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="transform-fields") as pool:
        for names in pool.map(lambda page: page_fields(read_page(page)), pages):
            fields.update(dict.fromkeys(names))
    names = column_names(fields)
    extra = {name: field for field, name in names.items() if name not in schema.CORE_COLUMNS}
    if len(extra) > schema.MAX_EXTRA_COLUMNS:
        shown = ", ".join(sorted(extra.values())[:5])
        raise TransformError(
            f"the batch's rows carry {len(extra)} fields outside the GHO core ({shown}, ...); a table may gain at "
            f"most {schema.MAX_EXTRA_COLUMNS} columns: the source is not sending GHO facts. Delete the batch to skip it"
        )
    return sorted(extra)
