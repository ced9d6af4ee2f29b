"""`scripts/indicators.py`: find WHO indicators and add them as datasets, without writing JSON by hand.

`add`, `remove`, `enable` and `disable` edit the datasets file (GHO_DATASETS_FILE, default
config/datasets.json), which adds to DATASET_CONFIG and never replaces it (`src.datasets_file`).
"""

import argparse
import re
import sys

import psycopg2

from config import config as cfg
from src import datasets_file, reference
from src.catalogue import Catalogue, matches
from src.commands.common import EXIT_CONFIG, EXIT_FAILED, SETTINGS_HELP, command, fail
from src.db import Database
from src.contracts.reference import labeled_view_name
from src.errors import EXIT_OK, ConfigError, GhoEtlError
from src.settings import INDICATOR_CODE, MODES
from src.text import printable

VERBS = "{search,show,add,remove,enable,disable,list,refresh}"


def _parser():
    parser = argparse.ArgumentParser(
        prog="indicators.py",
        description="Find WHO GHO indicators and add them as datasets. add/remove/enable/disable edit the "
        "datasets file (GHO_DATASETS_FILE, default config/datasets.json), which adds to DATASET_CONFIG.",
        epilog="exit codes: 0 done, 1 the API or the database failed, 2 bad usage, configuration, or an "
        "unknown indicator or dataset. " + SETTINGS_HELP,
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar=VERBS)
    search = verbs.add_parser("search", help="indicators whose code or name holds every word of TEXT")
    search.add_argument("text", nargs="+", metavar="TEXT")
    search.add_argument("--limit", type=int, default=25, help="most indicators shown (default 25)")
    show = verbs.add_parser("show", help="an indicator's name, the dimensions it uses, its rows at WHO")
    show.add_argument("code", metavar="CODE")
    add = verbs.add_parser("add", help="add an indicator as a dataset (checked against WHO's catalogue)")
    add.add_argument("code", metavar="CODE")
    add.add_argument("--name", help="dataset name (default: the code in lower case)")
    add.add_argument("--filter", help="OData $filter, e.g. \"SpatialDim eq 'DEU'\"")
    add.add_argument("--schedule", help="e.g. 'every day at 03:00', 'every monday at 04:00', 'every 6 hours'")
    add.add_argument("--mode", choices=MODES, help="merge (default), replace or append")
    add.add_argument("--table", help="target table (default: the dataset name)")
    add.add_argument("--disabled", action="store_true", help="add it switched off")
    add.add_argument("--no-check", action="store_true", help="add without asking WHO's catalogue")
    for verb, text in (
        ("remove", "remove a dataset added here"),
        ("enable", "switch a dataset on"),
        ("disable", "switch a dataset off (its table stays)"),
    ):
        verbs.add_parser(verb, help=text).add_argument("name", metavar="NAME")
    verbs.add_parser("list", help="every dataset: enabled, indicator, table, schedule, where it is defined")
    verbs.add_parser("refresh", help="refresh the reference tables (indicator names, dimension values) now")
    return parser


def indicators_main(argv=None) -> int:
    def body(invocation):
        code = getattr(invocation.args, "code", None)
        if code is not None and not INDICATOR_CODE.match(code):
            return fail(f"{printable(code, 80)!r} is not a GHO indicator code (letters, digits, _ . -)", EXIT_CONFIG)
        try:
            return _VERBS[invocation.args.verb](invocation.settings, invocation.args)
        except psycopg2.Error as exc:
            return fail(f"the database refused: {printable(str(exc).strip().splitlines()[0], 300)}", EXIT_FAILED)

    return command(_parser(), body, argv, logs="file", check_args=_check_args)


def _check_args(parser, args):
    if getattr(args, "limit", 1) < 1:
        parser.error("--limit must be at least 1")


def _configured(settings) -> dict:
    """Indicator code -> names of the datasets loading it."""
    found = {}
    for dataset in settings.datasets.values():
        for code in dataset.indicators:
            found.setdefault(code, []).append(dataset.name)
    return found


def _search(settings, args) -> int:
    text = " ".join(args.text)
    catalogue = Catalogue(settings)
    try:
        found = matches(catalogue.rows(), text)
    finally:
        catalogue.close()
    configured = _configured(settings)
    width = max((len(code) for code, _ in found[: args.limit]), default=0)
    for code, name in found[: args.limit]:
        mark = f"  [dataset {', '.join(configured[code])}]" if code in configured else ""
        print(f"{code.ljust(width)}  {printable(name, 200)}{mark}")
    more = f"; {len(found) - args.limit} more not shown (--limit)" if len(found) > args.limit else ""
    print(f"{len(found)} indicator(s) match {text!r} in {catalogue.source}{more}.")
    if found:
        print("Details: python3 scripts/indicators.py show CODE; add one: python3 scripts/indicators.py add CODE")
    return EXIT_OK


def _show(settings, args) -> int:
    catalogue = Catalogue(settings)
    try:
        name = catalogue.name_of(args.code)
        count = catalogue.row_count(args.code)
        if name is None and count is None:
            return fail(
                f"no indicator {args.code!r} at WHO (find one: python3 scripts/indicators.py search TEXT)", EXIT_CONFIG
            )
        used, seen = catalogue.dimensions_used(args.code) if count else ([], 0)
        titles = catalogue.dimension_titles() if used else {}
    finally:
        catalogue.close()
    print(f"{args.code}  {printable(name, 300) if name else '(not in the catalogue)'}")
    print(f"rows at WHO: {count if count is not None else 'unknown'}")
    if used:
        scope = f"in its first {seen} rows" if seen < count else "in all its rows"
        labels = ", ".join(f"{code} ({titles[code]})" if titles.get(code) else code for code in used)
        print(f"dimensions ({scope}): {labels}")
    datasets = [settings.datasets[n] for n in _configured(settings).get(args.code, [])]
    for dataset in datasets:
        state = "enabled" if dataset.enabled else "disabled"
        print(f"dataset {dataset.name}: {state}, table {dataset.table}, {dataset.schedule.text}")
    if not datasets:
        print(f"not configured; add it: python3 scripts/indicators.py add {args.code}")
    return EXIT_OK


def _default_name(code) -> str:
    name = re.sub(r"[^a-z0-9_]+", "_", code.lower()).strip("_") or "indicator"
    return ("i_" + name if name[0].isdigit() else name)[:63]


def _add(settings, args) -> int:
    name = args.name or _default_name(args.code)
    if name in settings.datasets:
        known = settings.datasets[name]
        return fail(
            f"dataset {name!r} exists already (indicator {known.indicator}); choose another with --name", EXIT_CONFIG
        )
    title = None
    if not args.no_check:
        catalogue = Catalogue(settings)
        try:
            title = catalogue.name_of(args.code)
        except GhoEtlError as exc:
            return fail(
                f"cannot check {args.code} against WHO's catalogue: {exc} (--no-check adds it anyway)", EXIT_FAILED
            )
        finally:
            catalogue.close()
        if title is None:
            return fail(
                f"no indicator {args.code!r} in {catalogue.source} (find one: python3 scripts/indicators.py search "
                "TEXT; --no-check adds it anyway)",
                EXIT_CONFIG,
            )
    entry = {"indicator": args.code, "enabled": not args.disabled}
    entry.update({key: getattr(args, key) for key in ("filter", "schedule", "mode", "table") if getattr(args, key)})

    def change(entries):
        if name in entries or name in cfg.DATASET_CONFIG:  # again under the lock: another add may have won
            raise ConfigError(f"dataset {name!r} exists already; choose another with --name")
        return {**entries, name: entry}

    datasets_file.edit(cfg.DATASETS_FILE, cfg.DATASET_CONFIG, change)
    dataset = _reloaded(name)
    print(
        f"added dataset {name} ({args.code}{': ' + printable(title, 200) if title else ''}; table {dataset.table}, "
        f"{dataset.schedule.text}{', disabled' if args.disabled else ''}) to {cfg.DATASETS_FILE}"
    )
    print(f"Run it now: python3 scripts/start_scheduler.py --once --dataset {name}")
    others = [n for n in _configured(settings).get(args.code, []) if n != name]
    if others:
        print(f"note: {', '.join(others)} loads {args.code} too (into its own table)")
    return EXIT_OK


def _reloaded(name):
    from src.settings import validate_datasets

    entries = datasets_file.read_entries(cfg.DATASETS_FILE)
    return validate_datasets(datasets_file.merge_datasets(cfg.DATASET_CONFIG, entries))[name]


def _remove(settings, args) -> int:
    name = args.name
    if name in cfg.DATASET_CONFIG:
        return fail(
            f"dataset {name!r} is defined in config/config.py (DATASET_CONFIG), not here; switch it off with: "
            f"python3 scripts/indicators.py disable {name}",
            EXIT_CONFIG,
        )
    if name not in datasets_file.read_entries(cfg.DATASETS_FILE):
        return _unknown(settings, name)
    table = settings.datasets[name].table
    datasets_file.edit(
        cfg.DATASETS_FILE, cfg.DATASET_CONFIG, lambda entries: {k: v for k, v in entries.items() if k != name}
    )
    print(f"removed dataset {name} from {cfg.DATASETS_FILE}")
    print(
        f"Its table {table} and the view {labeled_view_name(table)} stay in the database; folders it left behind: "
        "python3 scripts/status.py --remove-unknown"
    )
    return EXIT_OK


def _switch(settings, args, enabled) -> int:
    name = args.name
    if name not in settings.datasets:
        return _unknown(settings, name)

    def change(entries):
        return {**entries, name: {**entries.get(name, {}), "enabled": enabled}}

    datasets_file.edit(cfg.DATASETS_FILE, cfg.DATASET_CONFIG, change)
    print(f"{'enabled' if enabled else 'disabled'} dataset {name} (in {cfg.DATASETS_FILE})")
    return EXIT_OK


def _unknown(settings, name) -> int:
    known = ", ".join(sorted(settings.datasets)) or "none"
    return fail(f"unknown dataset {name!r} (configured: {known})", EXIT_CONFIG)


def _list(settings, args) -> int:
    added = datasets_file.read_entries(cfg.DATASETS_FILE)
    rows = [("dataset", "enabled", "indicator", "table", "schedule", "defined in")]
    for dataset in settings.datasets.values():
        where = [
            w for w, names in (("config.py", cfg.DATASET_CONFIG), ("datasets file", added)) if dataset.name in names
        ]
        state = "yes" if dataset.enabled else "no"
        rows.append(
            (dataset.name, state, ",".join(dataset.indicators), dataset.table, dataset.schedule.text, " + ".join(where))
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(f"datasets file: {cfg.DATASETS_FILE}{'' if added else ' (none yet)'}")
    return EXIT_OK


def _refresh(settings, args) -> int:
    database = Database(settings)
    connection = database.connect()
    try:
        Database.ensure_schema(connection)  # GHO_DB_SCHEMA may not exist before the first load
    finally:
        connection.close()
    result = reference.refresh(settings, database)
    print(result.summary())
    return EXIT_OK


_VERBS = {
    "search": _search,
    "show": _show,
    "add": _add,
    "remove": _remove,
    "enable": lambda settings, args: _switch(settings, args, True),
    "disable": lambda settings, args: _switch(settings, args, False),
    "list": _list,
    "refresh": _refresh,
}


if __name__ == "__main__":
    sys.exit(indicators_main())
