"""DATASET_CONFIG entries, validated: one `Dataset` per entry, or one ConfigError line naming the key at fault."""

from dataclasses import dataclass, field
from typing import Optional

from src.contracts.ledger import SYSTEM_TABLES
from src.contracts.reference import LABELED_SUFFIX, REFERENCE_TABLES, labeled_view_name
from src.dataset_keys import IDENTIFIER, dataset_error, indicator_codes, kept_columns, probe_flag, renames
from src.errors import ConfigError
from src.schedule_spec import Schedule, parse_schedule

# PostgreSQL's own names (pg_catalog, pg_temp, ...) and ours (the load's temp table is _gho_stage).
RESERVED_PREFIXES = ("pg_", "_gho", "etl_batches", "etl_runs")  # the last two: our tables, their keys and sequence
MODES = ("merge", "replace", "append")
DEFAULT_SCHEDULE = "every day at 02:00"
ENTRY_KEYS = {"enabled", "indicator", "indicators", "filter", "table", "schedule", "mode", "columns", "rename", "probe"}


@dataclass(frozen=True)
class Dataset:
    """One DATASET_CONFIG entry, validated.

    `indicator` is the code of a dataset of one indicator, and the codes joined by ", " (for display)
    of one of several; `indicators` always lists every code. `kept` is None when the table keeps every
    staging column, else the ones it keeps (the natural key always among them); `renames` pairs a
    staging column with the table's name for it.
    """

    name: str
    indicator: str
    table: str
    enabled: bool = True
    filter: Optional[str] = None
    schedule: Schedule = field(default_factory=lambda: parse_schedule(DEFAULT_SCHEDULE))
    mode: str = "merge"
    indicator_codes: tuple = ()
    kept: Optional[tuple] = None
    renames: tuple = ()
    probe: bool = True

    @property
    def indicators(self) -> tuple:
        """Every indicator code the dataset's table holds."""
        return self.indicator_codes or (self.indicator,)

    def column_for(self, core_column: str) -> Optional[str]:
        """The table's name for a staging column (`src.contracts.schema`), None when the dataset leaves it out.

        A field the API adds later (an extra column) is kept under its own name unless `columns` is set.
        """
        if self.kept is not None and core_column not in self.kept:
            return None
        return dict(self.renames).get(core_column, core_column)


def validate_dataset(name, entry) -> Dataset:
    """Turn one DATASET_CONFIG entry into a Dataset, or raise ConfigError."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise ConfigError(
            f"DATASET_CONFIG: dataset name {name!r} must be a plain identifier "
            "(letters, digits, underscore; not starting with a digit; at most 63 characters)"
        )
    if not isinstance(entry, dict):
        raise ConfigError(f"DATASET_CONFIG[{name!r}]: must be an object of settings")
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        raise dataset_error(name, unknown[0], f"unknown key (allowed: {', '.join(sorted(ENTRY_KEYS))})")
    codes = indicator_codes(name, entry)
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise dataset_error(name, "enabled", f"{enabled!r} must be true or false")
    odata_filter = entry.get("filter")
    if odata_filter is not None:
        if not isinstance(odata_filter, str) or not odata_filter.strip():
            raise dataset_error(name, "filter", "must be an OData $filter string or null")
        if any(ord(ch) < 32 for ch in odata_filter):
            raise dataset_error(name, "filter", "contains control characters")
    table = entry.get("table") or name
    if not isinstance(table, str) or not IDENTIFIER.match(table):
        raise dataset_error(name, "table", f"{table!r} is not a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*)")
    if table.lower() in SYSTEM_TABLES + REFERENCE_TABLES or table.lower().startswith(RESERVED_PREFIXES):
        raise dataset_error(
            name,
            "table",
            f"{table!r} is reserved (names starting with pg_, _gho, etl_batches or etl_runs, "
            f"and the reference tables {', '.join(REFERENCE_TABLES)})",
        )
    try:
        schedule = parse_schedule(entry.get("schedule") or DEFAULT_SCHEDULE)
    except ValueError as exc:
        raise dataset_error(name, "schedule", str(exc)) from None
    mode = entry.get("mode") or "merge"
    if mode not in MODES:
        raise dataset_error(name, "mode", f"{mode!r} is not one of {', '.join(MODES)}")
    kept = kept_columns(name, entry)
    return Dataset(
        name=name,
        indicator=", ".join(codes),
        table=table.lower(),
        enabled=enabled,
        filter=odata_filter,
        schedule=schedule,
        mode=mode,
        indicator_codes=codes,
        kept=kept,
        renames=renames(name, entry, kept),
        probe=probe_flag(name, entry),
    )


def validate_datasets(raw) -> dict:
    if not isinstance(raw, dict):
        raise ConfigError("DATASET_CONFIG must be an object mapping dataset names to settings")
    datasets = {name: validate_dataset(name, entry) for name, entry in raw.items()}
    owners = {}
    for dataset in datasets.values():
        if dataset.table in owners:
            raise dataset_error(
                dataset.name, "table", f"{dataset.table!r} is already used by {owners[dataset.table]!r}"
            )
        owners[dataset.table] = dataset.name
    for dataset in datasets.values():
        view = labeled_view_name(dataset.table)
        if view in owners:
            raise dataset_error(
                owners[view],
                "table",
                f"{view!r} is the labelled view of {dataset.name!r} (every table gets a view named "
                f"<table>{LABELED_SUFFIX})",
            )
    return datasets
