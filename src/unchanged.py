"""No work on an unchanged batch: what the runner checks between a job's extract and its transform.

After an extract whose change probe found nothing new, the table must still hold what its last batch
left (`table_intact`); otherwise the job downloads in full (`full_extract`).

A complete landing batch whose pages are those of the last batch loaded (the content hash the transform
would give it, `transform.content_hash`) into a table that still holds what that batch left is recorded
in the ledger by the load (`load.record_if_loaded`) and deleted, and the job's transform and load are
recorded as "unchanged (same pages)" without running. Only when it is the one batch waiting: anything
else goes through transform and load as usual. Every failure here only means the usual path is taken.
"""

import logging

from dataclasses import replace

from src import extract, load, transform
from src.contracts import landing, layout, staging
from src.locks import phase_lock
from src.storage import open_store

log = logging.getLogger("gho_etl.pipeline")


def table_intact(runner, dataset) -> bool:
    """After a probe found nothing new: whether the table still holds what its last batch left (else the
    job downloads in full, so that an edit by hand is repaired and a change of the dataset's columns made)."""
    try:
        if load.table_holds_last_batch(runner.settings, dataset, runner.database):
            return True
    except Exception as exc:
        log.warning("%s: could not check the table (%s)", dataset.name, exc)
    log.info("%s: the table does not hold what its last batch left; downloading in full", dataset.name)
    return False


def full_extract(settings, dataset, database):
    """The extract of a full refresh, whatever the change probe says."""
    return extract.run(replace(settings, full_refresh=True), dataset, database)


def nothing_waits(settings, dataset) -> bool:
    """Whether no complete landing batch and no staging batch of the dataset waits."""
    store = open_store(settings)
    return not landing.complete_batches(store, dataset.name) and not staging.batch_ids(store, dataset.name)


def same_pages(settings, dataset, database):
    """The rows of the last batch loaded, once the one batch waiting, holding its pages, is recorded and
    deleted; None when there is no such batch (or anything fails: then transform and load run)."""
    store = open_store(settings)
    try:
        with phase_lock(settings, dataset.name, "transform"):
            batches = landing.batch_ids(store, dataset.name)
            if len(batches) != 1 or staging.batch_ids(store, dataset.name):
                return None
            batch_id = batches[0]
            if not landing.is_complete(store, dataset.name, batch_id):
                return None
            content = transform.content_hash(landing.read_manifest(store, dataset.name, batch_id))
            rows = load.record_if_loaded(settings, dataset, database, batch_id, content)
            if rows is not None:
                store.delete_tree(layout.landing_batch(dataset.name, batch_id))
            return rows
    except Exception as exc:  # never a reason to fail: the usual path follows
        log.warning("%s: could not check whether the batch is unchanged (%s); transforming it", dataset.name, exc)
        return None
