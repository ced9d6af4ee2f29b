"""Shared by the load tests: a batch staged through extract and transform, loaded, and a value read back.

A plain module (not conftest): the stand-in serves `rows`, the dataset is
extracted and transformed in this process, then loaded into the test's
database; `db_scalar` reads one value over the test's open connection.
"""

from src.db import Database
from src.extract.phase import extract_dataset
from src.load.phase import load_dataset
from src.transform.phase import transform_dataset


def stage_batch(settings, stub, rows, name="life_expectancy_at_birth"):
    """Serve `rows` for WHOSIS_000001, extract and transform dataset `name`; return the dataset."""
    stub.set_rows("WHOSIS_000001", rows)
    dataset = settings.datasets[name]
    extract_dataset(settings, dataset)
    transform_dataset(settings, dataset)
    return dataset


def load_batch(settings, dataset):
    """Load the dataset's staged batches; return the load results."""
    return load_dataset(settings, dataset, Database(settings))


def db_scalar(db, query):
    """The first column of the first row `query` returns on connection `db`."""
    with db.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchone()[0]
