"""Batches are applied in the order they were made, whatever the clock said when they were made.

A batch id carries a sequence number the extract keeps; its time part only
keeps ids unique. The test makes two batches, then rewrites the time part of
the newer one's id as if the clock had been set back before it was made.
"""

import re

from tests.load_checks import db_scalar, load_batch, stage_batch
from utils.gho_samples import generate_rows

_TIME_PART = re.compile(r"\d{8}T\d{12}Z")


def _as_if_the_clock_was_back(staging_dir, batch_id):
    earlier = _TIME_PART.sub("20000101T000000000000Z", batch_id)
    (staging_dir / f"{batch_id}.parquet").rename(staging_dir / f"{earlier}.parquet")
    return earlier


def test_a_newer_batch_made_with_the_clock_set_back_is_still_applied_last(make_settings, stub, db, tmp_path):
    settings = make_settings()
    rows = generate_rows("WHOSIS_000001", 30)
    dataset = stage_batch(settings, stub, rows)
    newer = [dict(r, NumericValue=r["NumericValue"] + 10) for r in rows]
    stage_batch(settings, stub, newer)
    staging_dir = tmp_path / "data" / "staging" / dataset.name
    older_id, newer_id = sorted(p.stem for p in staging_dir.glob("*.parquet"))
    _as_if_the_clock_was_back(staging_dir, newer_id)
    load_batch(settings, dataset)
    first = sorted(rows, key=lambda r: r["Id"])[0]
    value = db_scalar(db, f"SELECT numeric_value FROM {dataset.table} WHERE id = {first['Id']}")
    assert value == first["NumericValue"] + 10, "the older batch was applied last and its stale values won"
