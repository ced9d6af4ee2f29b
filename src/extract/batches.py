"""The landing batch an extract works on: the incomplete one to resume, or a new one; and starting over."""

import logging
import time

from src.contracts import landing, layout, staging
from src.contracts.landing import PROGRESS, REQUEST, batch_file
from src.errors import SourceChanged

log = logging.getLogger("gho_etl.extract")

MAX_RESTARTS = 3


def open_batch(store, source, dataset, request):
    """(batch_id, state, resumed): the latest incomplete batch asking for `request`, or a new one.

    Every other incomplete batch is deleted: its request differs (settings
    changed) or it cannot be read, so nothing of it can be trusted.
    """
    incomplete = [b for b in landing.batch_ids(store, dataset.name) if not landing.is_complete(store, dataset.name, b)]
    for candidate in reversed(incomplete):
        try:
            matches = store.read_json(batch_file(dataset.name, candidate, REQUEST)) == request
            state = store.read_json(batch_file(dataset.name, candidate, PROGRESS))
        except (OSError, ValueError):
            matches = False
        if matches:
            for stale in incomplete:
                if stale != candidate:
                    store.delete_tree(layout.landing_batch(dataset.name, stale))
            log.info(
                "resuming landing batch %s of %s after %d complete page(s)",
                candidate,
                dataset.name,
                len(state["pages"]),
                extra={"dataset": dataset.name, "batch_id": candidate},
            )
            return candidate, state, True
    for stale in incomplete:
        log.info("discarding incomplete landing batch %s (its request differs or is unreadable)", stale)
        store.delete_tree(layout.landing_batch(dataset.name, stale))
    batch_id = landing.new_batch_id(_next_sequence(store, dataset.name))
    state = source.new_state(request)
    store.write_json(batch_file(dataset.name, batch_id, REQUEST), request)
    store.write_json(batch_file(dataset.name, batch_id, PROGRESS), state)
    return batch_id, state, False


def _next_sequence(store, dataset_name) -> int:
    """One past every batch not yet applied (in landing or staging).

    Only the order of pending batches matters; once all are applied the count
    may start again, and the time part of the id keeps every id unique.
    Called under the dataset's extract lock, so no two batches share a number.
    """
    pending = landing.batch_ids(store, dataset_name) + staging.batch_ids(store, dataset_name)
    return max((landing.batch_sequence(b) for b in pending), default=0) + 1


def indicators_of(dataset) -> str:
    """`indicator X` or `indicators X, Y`, as errors name what a dataset fetches."""
    return f"indicator{'s' if len(dataset.indicators) > 1 else ''} {dataset.indicator}"


def start_over(store, source, dataset, request, batch_id, state, change: SourceChanged) -> dict:
    """Discard the attempt's pages after the source changed under it; re-raise once MAX_RESTARTS are used."""
    restarts = state["attempt"] - 1
    if restarts >= MAX_RESTARTS:
        raise SourceChanged(
            f"{indicators_of(dataset)}: the source changed while it was paged, {restarts + 1} times in a row "
            f"(last: {change}); try again later"
        ) from None
    delay = source.backoff(restarts + 1)
    log.warning(
        "%s: %s; landing batch %s starts over in %.1fs (restart %d of %d)",
        dataset.name,
        change,
        batch_id,
        delay,
        restarts + 1,
        MAX_RESTARTS,
        extra={"dataset": dataset.name, "batch_id": batch_id, "restart": restarts + 1},
    )
    fresh = source.new_state(request, state["attempt"] + 1)
    # What the source learnt of the API in this batch (e.g. that it ignores an Id range's upper bound) holds
    # for the attempts after it too.
    carry = dict(state.get("carry") or {}, **getattr(change, "carry", {}))
    if carry:
        fresh["carry"] = carry
    # First the state: the old pages are no longer listed, so never trusted, whenever this is killed.
    store.write_json(batch_file(dataset.name, batch_id, PROGRESS), fresh)
    for page in state["pages"]:
        store.delete(batch_file(dataset.name, batch_id, page["file"]))
    time.sleep(delay)
    return fresh
