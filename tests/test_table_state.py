"""What a table holds after a batch, recorded as the transactions whose rows it holds (src/load/table_state.py).

A first load records `xmin:<xid>:<columns>` instead of hashing every row, and
a merge lists the xmins the table holds after it (one scan, no hash); an
identical batch is skipped while every row still carries a listed xmin
(VACUUM FULL keeps it), and applied again when any row was written since,
even with the same values, when a row was added or deleted, when a column was
renamed, dropped or added again by hand, or when the dataset keeps other
columns now. A replace first restates the first load's state as a
fingerprint, so the two can be compared; a table more transactions wrote than
a state lists gets a fingerprint too. A state lists full ids and the cluster:
one from another cluster, listing an id the server has not reached, or of an
earlier version proves nothing, nor do ids 2^32 transactions old.
"""

import pytest

from src.contracts import ledger
from src.load.table_state import MAX_WRITERS, XID_SPAN, full_xid, ids_still_unique, parse_state
from tests.load_checks import db_scalar as _scalar
from tests.load_checks import load_batch as _load
from tests.load_checks import stage_batch as _stage
from utils.gho_samples import generate_rows

TABLE = "life_expectancy_at_birth"


def _states(db):
    with db.cursor() as cursor:
        cursor.execute("SELECT table_fingerprint FROM etl_batches ORDER BY loaded_at, batch_id")
        return [state for (state,) in cursor.fetchall()]


def _recorded_as(db, edit):
    """Rewrite the last recorded state's fields (`xmin`, the ids, ...) with `edit`."""
    [recorded] = _states(db)
    fields = recorded.split(":")
    edit(fields)
    with db.cursor() as cursor:
        cursor.execute("UPDATE etl_batches SET table_fingerprint = %s", [":".join(fields)])
    db.commit()


def _first_load(make_settings, stub, db, config=None):
    settings = make_settings(config)
    rows = generate_rows("WHOSIS_000001", 300)
    dataset = _stage(settings, stub, rows)
    _load(settings, dataset)
    xid = _scalar(db, f"SELECT DISTINCT xmin::text FROM {TABLE}")
    [state] = _states(db)
    assert state.startswith(f"xmin:{xid}:")  # the filling transaction, no hash of the rows
    return settings, dataset, rows


@pytest.mark.parametrize("maintenance", [None, "VACUUM FULL"])
def test_an_identical_batch_is_skipped_while_every_row_is_the_first_loads(make_settings, stub, db, maintenance):
    settings, dataset, rows = _first_load(make_settings, stub, db)
    if maintenance:
        db.autocommit = True  # VACUUM runs outside a transaction
        with db.cursor() as cursor:
            cursor.execute(f"{maintenance} {TABLE}")
        db.autocommit = False
    _stage(settings, stub, rows)
    [result] = _load(settings, dataset)
    assert result.skipped and (result.inserted, result.updated) == (0, 0)
    assert len(set(_states(db))) == 1


def test_a_row_deleted_and_put_back_unchanged_by_hand_makes_the_batch_apply_again(make_settings, stub, db):
    settings, dataset, rows = _first_load(make_settings, stub, db)
    with db.cursor() as cursor:  # same count, same values: only the row's xmin tells
        cursor.execute(f"CREATE TEMP TABLE kept AS SELECT * FROM {TABLE} WHERE id = 7")
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = 7")
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM kept")
    db.commit()
    _stage(settings, stub, rows)
    [result] = _load(settings, dataset)
    assert not result.skipped and (result.inserted, result.updated) == (0, 0)
    assert _scalar(db, f"SELECT count(*) FROM {TABLE}") == 300
    _stage(settings, stub, rows)
    [again] = _load(settings, dataset)
    assert again.skipped, "proven by its fingerprint now"


@pytest.mark.parametrize(
    "by_hand",
    [
        ["UPDATE {t} SET low = low WHERE id = 7"],  # the same value, a new row version
        ["ALTER TABLE {t} RENAME low TO x", "ALTER TABLE {t} RENAME high TO low", "ALTER TABLE {t} RENAME x TO high"],
        ["ALTER TABLE {t} DROP COLUMN parent_location CASCADE", "ALTER TABLE {t} ADD COLUMN parent_location text"],
    ],
    ids=["same-value update", "columns swapped", "column dropped and added"],
)
def test_a_table_changed_by_hand_without_new_rows_is_repaired_by_an_identical_batch(make_settings, stub, db, by_hand):
    settings, dataset, rows = _first_load(make_settings, stub, db)
    with db.cursor() as cursor:
        for statement in by_hand:
            cursor.execute(statement.format(t=TABLE))
    db.commit()
    _stage(settings, stub, rows)
    [result] = _load(settings, dataset)
    assert not result.skipped
    with db.cursor() as cursor:
        cursor.execute(f"SELECT low, high, parent_location FROM {TABLE} WHERE id = 7")
        assert cursor.fetchone() == (rows[6]["Low"], rows[6]["High"], rows[6]["ParentLocation"])


def test_a_dataset_that_keeps_other_columns_now_is_not_unchanged(make_settings, stub, db):
    _first_load(make_settings, stub, db)
    narrower = {TABLE: {"indicator": "WHOSIS_000001", "columns": ["value", "numeric_value"]}}
    settings = make_settings(narrower)
    dataset = _stage(settings, stub, generate_rows("WHOSIS_000001", 300))
    [result] = _load(settings, dataset)
    assert not result.skipped


def _revise_one(rows):
    revised = [dict(row) for row in rows]
    revised[0]["NumericValue"] = revised[0]["NumericValue"] + 1
    revised[0]["Value"] = str(revised[0]["NumericValue"])
    return revised


def test_a_replace_restates_the_first_loads_state_as_a_fingerprint_a_merge_need_not(make_settings, stub, db):
    replace = {TABLE: {"indicator": "WHOSIS_000001", "mode": "replace"}}
    settings, dataset, rows = _first_load(make_settings, stub, db, replace)
    _stage(settings, stub, _revise_one(rows))
    _load(settings, dataset)
    first, second = _states(db)
    assert not first.startswith("xmin:") and not second.startswith("xmin:") and first != second


def _writers(db):
    with db.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT xmin::text FROM {TABLE}")
        return sorted((xid for (xid,) in cursor.fetchall()), key=int)


def test_a_merge_records_the_transactions_whose_rows_the_table_holds(make_settings, stub, db):
    settings, dataset, rows = _first_load(make_settings, stub, db)
    _stage(settings, stub, _revise_one(rows))
    [result] = _load(settings, dataset)
    assert result.updated == 1
    first, second = _states(db)
    writers = _writers(db)
    assert len(writers) == 2 and second.startswith(f"xmin:{','.join(writers)}:")  # one scan of xmin, no hash
    assert first.split(":")[2:] == second.split(":")[2:]  # the same columns, the same cluster
    _stage(settings, stub, _revise_one(rows))
    [again] = _load(settings, dataset)
    assert again.skipped and (again.inserted, again.updated) == (0, 0)


@pytest.mark.parametrize(
    "by_hand",
    [
        ["UPDATE {t} SET low = low + 1 WHERE id = 7"],  # a row the first load wrote
        ["UPDATE {t} SET numeric_value = 0 WHERE id = 1"],  # the row the merge wrote
        ["DELETE FROM {t} WHERE id = 1"],
        ["UPDATE {t} SET low = low WHERE id = 1"],  # the same value, a new row version
        [
            "CREATE TEMP TABLE extra AS SELECT * FROM {t} WHERE id = 7",
            "UPDATE extra SET id = 999999, time_dim = 1800",
            "INSERT INTO {t} SELECT * FROM extra",
        ],
    ],
    ids=["first load's row edited", "merged row edited", "merged row deleted", "same-value update", "row added"],
)
def test_a_table_changed_by_hand_after_a_merge_is_repaired_by_an_identical_batch(make_settings, stub, db, by_hand):
    settings, dataset, rows = _first_load(make_settings, stub, db)
    revised = _revise_one(rows)
    _stage(settings, stub, revised)
    _load(settings, dataset)
    with db.cursor() as cursor:
        for statement in by_hand:
            cursor.execute(statement.format(t=TABLE))
    db.commit()
    _stage(settings, stub, revised)
    [result] = _load(settings, dataset)
    assert not result.skipped
    with db.cursor() as cursor:
        cursor.execute(f"SELECT numeric_value, low FROM {TABLE} WHERE id IN (1, 7) ORDER BY id")
        assert cursor.fetchall() == [
            (revised[0]["NumericValue"], revised[0]["Low"]),
            (rows[6]["NumericValue"], rows[6]["Low"]),
        ]
    _stage(settings, stub, revised)
    [again] = _load(settings, dataset)
    assert again.skipped


def test_a_table_written_by_more_transactions_than_the_state_lists_gets_a_fingerprint(make_settings, stub, db):
    settings, dataset, rows = _first_load(make_settings, stub, db)
    with db.cursor() as cursor:  # each its own transaction, values unchanged
        for row_id in range(1, MAX_WRITERS + 2):
            cursor.execute(f"UPDATE {TABLE} SET low = low WHERE id = %s", [row_id])
            db.commit()
    _stage(settings, stub, _revise_one(rows))
    _load(settings, dataset)
    assert not _states(db)[-1].startswith("xmin:")
    _stage(settings, stub, _revise_one(rows))
    [again] = _load(settings, dataset)
    assert again.skipped, "proven by its fingerprint"


@pytest.mark.parametrize(
    "listed", ["", "abc", "99999999999999999999", "{xid},,{xid}", "\u00b2", "{xid}x", "999999999999999999999"]
)
def test_a_recorded_state_that_does_not_parse_proves_nothing(make_settings, stub, db, listed):
    settings, dataset, rows = _first_load(make_settings, stub, db)
    # The real columns digest and cluster: only the list of transactions is wrong.
    _recorded_as(db, lambda fields: fields.__setitem__(1, listed.format(xid=fields[1])))
    _stage(settings, stub, rows)
    [result] = _load(settings, dataset)
    assert not result.skipped and (result.inserted, result.updated) == (0, 0)


def test_a_batch_that_only_repairs_a_hand_edit_after_a_merge_is_no_change(make_settings, stub, db):
    settings, dataset, rows = _first_load(make_settings, stub, db)
    revised = _revise_one(rows)
    _stage(settings, stub, revised)
    [merged] = _load(settings, dataset)
    with db.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET low = low + 1 WHERE id = 7")
    db.commit()
    _stage(settings, stub, revised)
    [repair] = _load(settings, dataset)
    assert repair.updated == 1  # the hand edit undone: the values are those the merge left
    with db.cursor() as cursor:
        [(batch_id, _, inserted, updated)] = ledger.last_changes(cursor).values()
    assert (batch_id, inserted, updated) == (merged.batch_id, 0, 1)


@pytest.mark.parametrize(
    "edit",
    [
        lambda fields: fields.__setitem__(1, str(int(fields[1]) + XID_SPAN)),  # the same 32 bits, 2^32 later
        lambda fields: fields.__setitem__(3, "1" if fields[3] != "1" else "2"),  # another server's identifier
        lambda fields: fields.pop(3),  # an earlier version's state: low 32 bits, no cluster
    ],
    ids=["an id the server has not reached", "another cluster", "an earlier version's state"],
)
def test_a_state_of_another_history_proves_nothing_and_the_batch_applies_once_more(make_settings, stub, db, edit):
    """A ledger restored onto another server, or beside ids counted afresh, cannot vouch for its rows' ids."""
    settings, dataset, rows = _first_load(make_settings, stub, db)
    _recorded_as(db, edit)
    _stage(settings, stub, rows)
    [result] = _load(settings, dataset)
    assert not result.skipped and (result.inserted, result.updated) == (0, 0)
    assert len(_states(db)[-1].split(":")) == 4  # recorded afresh, with full ids and the cluster
    _stage(settings, stub, rows)
    [again] = _load(settings, dataset)
    assert again.skipped


def test_full_ids_from_the_32_bits_a_row_stores():
    assert full_xid(10, 10) == 10
    assert full_xid(5, XID_SPAN + 10) == XID_SPAN + 5
    assert full_xid(XID_SPAN - 3, XID_SPAN + 10) == XID_SPAN - 3  # written in the epoch before
    assert full_xid(11, 2 * XID_SPAN + 10) == XID_SPAN + 11


def test_listed_ids_prove_nothing_once_another_transaction_can_share_their_32_bits():
    assert ids_still_unique([10, 500], 501)
    assert ids_still_unique([], 1)
    assert not ids_still_unique([10, 501], 501)  # not reached yet: another history
    assert ids_still_unique([10], 10 + XID_SPAN)  # the next id to share them has not started
    assert not ids_still_unique([10], 11 + XID_SPAN)
    assert ids_still_unique([XID_SPAN - 5], XID_SPAN + 3)


@pytest.mark.parametrize(
    "state, parsed",
    [
        ("xmin:5,4294967301:0123abcd:7714708659341745719", ([5, 4294967301], "0123abcd", "7714708659341745719")),
        ("xmin:5:0123abcd:-1234567890123456789", ([5], "0123abcd", "-1234567890123456789")),  # made after 2038
        ("xmin:5:0123abcd:-", ([5], "0123abcd", "-")),  # a role that may not read it
        ("xmin::0123abcd:42", ([], "0123abcd", "42")),
        ("xmin:5:0123abcd", None),  # an earlier version's
        ("xmin:5:0123abcd:4x", None),
        ("xmin:5:0123abcd:--1", None),
        ("xmin:5:0123abcd:42:7", None),
        ("300:123456", None),  # a fingerprint
    ],
)
def test_recorded_states_parse_strictly(state, parsed):
    assert parse_state(state) == parsed
