"""What a PostgreSQL error means for the load, by its SQLSTATE class, never by its Python class.

psycopg2 files some errors of the server under OperationalError (a key too
large for an index is one), so "the connection is gone" is decided by the
code alone: none (the server never answered) or class 08.
"""

import psycopg2

from src.errors import DatabaseBusy, DatabaseLimit, DatabaseUnavailable, LoadError
from src.text import first_line

# SQLSTATE class -> (error class, what the user reads first)
_CLASSES = {
    "08": (DatabaseUnavailable, "lost the database"),
    "53": (DatabaseBusy, "the database ran out of resources (disk, memory or connections)"),
    "40": (DatabaseBusy, "the database rolled the transaction back (a deadlock or conflict)"),
    "57": (DatabaseBusy, "the database stopped accepting work (shutting down?)"),
    "54": (DatabaseLimit, "a PostgreSQL limit was exceeded"),
    "42": (LoadError, "the database refused a statement (a privilege or a table changed by hand?)"),
    "23": (LoadError, "a constraint added by hand refused a row"),
    "22": (LoadError, "the database refused a value"),
    "25": (LoadError, "the database refused to write (read-only?)"),
    "58": (DatabaseBusy, "the database server failed to read or write its own files"),
}


# Codes whose class alone would mislead.
_CODES = {
    "57014": (DatabaseBusy, "a statement was cancelled (statement_timeout?)"),
    "55P03": (DatabaseBusy, "a lock could not be had in time (lock_timeout?)"),
    "25P03": (DatabaseUnavailable, "the server ended the session (idle_in_transaction_session_timeout?)"),
    "53100": (DatabaseBusy, "the database server's disk is full"),
}


def classify(exc: psycopg2.Error, dataset_name: str, table: str) -> LoadError:
    """The error of ours for `exc`, with its cause in one line; the transaction was rolled back."""
    code = getattr(exc, "pgcode", None)
    if code is None and isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)):
        error, what = DatabaseUnavailable, "lost the database"
    else:
        error, what = _CODES.get(code) or _CLASSES.get((code or "")[:2], (LoadError, "the database refused the batch"))
    where = f" [SQLSTATE {code}]" if code else ""
    return error(
        f"{what} while loading {dataset_name} into {table}: {first_line(exc)}{where}; "
        "the transaction was rolled back and staging kept"
    )
