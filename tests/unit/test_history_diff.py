"""The transaction diff, run after run through the real store (SQLite and PostgreSQL).

Each expected output is worked out by hand from the seed's Report Mode / the contract §4:
submission mode sends new keys and changed updatable fields with a blank type, and a D
(with the fields as last submitted) for in-scope keys no longer extracted.
"""

from __future__ import annotations

import functools

import pandas as pd
import pytest

from calpads.history.diff import ScopeFilter, compute_transactions, record_keys
from tests.unit.test_history_support import (  # noqa: F401  (fixtures)
    LAST_YEAR,
    LAYOUT,
    LEA,
    OTHER_LEA,
    S1,
    S2,
    YEAR,
    bob,
    frame,
    history_engine_fixture,
    pg_history_url_fixture,
    rec,
    run,
    sent,
    store_fixture,
)

# The first submission: Ann's 101 and 122 (service 08), Bob's 108.
A = rec("1.21")
B = rec("1.22.08", program_code="122", membership_start_date="20250820", service_academic_year=YEAR,
        service_code="08")
C = bob("2.23", program_code="108", membership_start_date="20251001", membership_end_date="20260301")


def first(store):
    result = run(store, frame(A, B, C), "run1")
    assert sent(result) == [("", "1.21"), ("", "1.22.08"), ("", "2.23")]
    assert result.counts == {"new": 3, "changed": 0, "unchanged": 0, "deleted": 0}
    return result


def test_first_submission_sends_everything_with_a_blank_type(store):
    result = first(store)
    assert list(result.records.columns) == LAYOUT.columns


def test_no_change_sends_nothing(store):
    first(store)
    result = run(store, frame(A, B, C), "run2")
    assert sent(result) == []
    assert result.counts == {"new": 0, "changed": 0, "unchanged": 3, "deleted": 0}


def test_program_added_sends_only_the_new_record(store):
    first(store)
    d = bob("2.25", program_code="191", membership_start_date="20251103", homeless_dwelling_type="110",
            unaccompanied_youth="N", runaway_youth="N")
    result = run(store, frame(A, B, C, d), "run2")
    assert sent(result, "program_code") == [("", "2.25", "191")]
    assert result.counts["new"] == 1 and result.counts["unchanged"] == 3


def test_end_date_changed_is_an_update_with_a_blank_type(store):
    first(store)
    result = run(store, frame({**A, "membership_end_date": "20260115"}, B, C), "run2")
    assert sent(result, "membership_end_date") == [("", "1.21", "20260115")]
    assert result.counts == {"new": 0, "changed": 1, "unchanged": 2, "deleted": 0}
    # and clearing it again is another update
    result = run(store, frame(A, B, C), "run3")
    assert sent(result, "membership_end_date") == [("", "1.21", None)]


def test_start_date_corrected_is_a_delete_of_the_old_key_and_an_add_of_the_new(store):
    first(store)
    result = run(store, frame({**A, "membership_start_date": "20250903"}, B, C), "run2")
    assert sent(result, "membership_start_date") == [("", "1.21", "20250903"), ("D", "1.21", "20250902")]
    assert result.counts == {"new": 1, "changed": 0, "unchanged": 2, "deleted": 1}
    # run 3: the old key is deleted in the history; nothing to send again
    assert sent(run(store, frame({**A, "membership_start_date": "20250903"}, B, C), "run3")) == []


def test_program_deleted_is_a_d_record_repeating_the_last_submitted_fields(store):
    first(store)
    result = run(store, frame(A, B), "run2")
    assert result.counts == {"new": 0, "changed": 0, "unchanged": 2, "deleted": 1}
    (row,) = result.records.to_dict(orient="records")
    assert row == {**C, "transaction_type": "D"}
    # Deleted once; a later run does not delete it again, and re-adding it is an add.
    assert sent(run(store, frame(A, B), "run3")) == []
    assert sent(run(store, frame(A, B, C), "run4")) == [("", "2.23")]


def test_changed_fields_then_deleted_repeats_the_latest_submitted_values(store):
    first(store)
    run(store, frame(A, B, {**C, "membership_end_date": "20260315"}), "run2")
    result = run(store, frame(A, B), "run3")
    assert sent(result, "membership_end_date") == [("D", "2.23", "20260315")]


def test_school_changed_is_a_delete_and_an_add(store):
    first(store)
    result = run(store, frame({**A, "school_of_attendance": S2}, B, C), "run2")
    assert sent(result, "school_of_attendance") == [("", "1.21", S2), ("D", "1.21", S1)]


def test_primary_disability_changed_is_an_update(store):
    e = rec("1.26", program_code="144", membership_start_date="20250815", primary_disability_code="210",
            dsea="1234567")
    run(store, frame(A, e), "run1")
    result = run(store, frame(A, {**e, "primary_disability_code": "240"}), "run2")
    assert sent(result, "primary_disability_code") == [("", "1.26", "240")]
    assert result.counts == {"new": 0, "changed": 1, "unchanged": 1, "deleted": 0}


def test_history_of_another_school_is_never_deleted(store):
    at_s2 = rec("1.30", school_of_attendance=S2, program_code="108", membership_start_date="20250905")
    run(store, frame(A, C, at_s2), "run1")
    # A run for S1 only: Bob's 108 at S1 was removed (deleted); Ann's 108 at S2 is not extracted (other school).
    result = run(store, frame(A), "run2", scope=ScopeFilter(schools={S1}))
    assert sent(result) == [("D", "2.23")]


def test_history_of_another_program_set_is_never_deleted(store):
    fall = bob("2.27", program_code="135", membership_start_date="20250901", migrant_id="06123456789")
    run(store, frame(A, C, fall), "run1")
    # An eoy2-like run (101, 108): the 135 (fall1 program) is out of scope; the 108 was removed.
    result = run(store, frame(A), "run2", scope=ScopeFilter(programs={"101", "108"}))
    assert sent(result, "program_code") == [("D", "2.23", "108")]


def test_history_of_other_students_is_never_deleted_in_a_run_over_selected_students(store):
    a2 = rec("1.28", program_code="108", membership_start_date="20250910")
    run(store, frame(A, a2, C), "run1")
    result = run(store, frame(A), "run2", scope=ScopeFilter(students={"1001"}))
    assert sent(result) == [("D", "1.28")]


def test_history_of_another_academic_year_is_neither_base_nor_deleted(store):
    old = rec("1.21", academic_year_id=LAST_YEAR, membership_start_date="20240902")
    run(store, frame(old, {**C, "academic_year_id": LAST_YEAR}), "run_ly", year=LAST_YEAR)
    # This year's first run: everything is new, and last year's records are not deleted.
    result = run(store, frame(A), "run1")
    assert sent(result) == [("", "1.21")]
    assert result.counts["deleted"] == 0
    # ... and last year's history is intact.
    assert len(store.last_submitted("SPRG", LEA, LAST_YEAR)) == 2


def test_history_of_another_lea_is_neither_base_nor_deleted(store):
    other = {**C, "reporting_lea": OTHER_LEA}
    run(store, frame(other), "run1", lea=OTHER_LEA)
    result = run(store, frame(A, C), "run1")       # same run id, other LEA: its own run
    assert sent(result) == [("", "1.21"), ("", "2.23")]
    assert sent(run(store, frame(A), "run2")) == [("D", "2.23")]
    assert len(store.last_submitted("SPRG", OTHER_LEA, YEAR)) == 1


@pytest.mark.parametrize("mode", ["replacement", "non_submission"])
def test_replacement_and_non_submission_send_every_record_and_no_deletes(store, mode):
    first(store)
    result = run(store, frame({**A, "membership_end_date": "20260115"}, B), "run2", mode=mode,
                 save=mode == "replacement")
    assert sent(result, "membership_end_date") == [("", "1.21", "20260115"), ("", "1.22.08", None)]
    assert result.counts == {"new": 0, "changed": 1, "unchanged": 1, "deleted": 0}
    if mode == "replacement":
        # The replacement was saved: C was never deleted in CALPADS, so a submission run now deletes it.
        assert sent(run(store, frame({**A, "membership_end_date": "20260115"}, B), "run3")) == [("D", "2.23")]


def test_rerun_of_a_saved_run_diffs_against_the_same_base(store):
    first(store)
    changed = frame({**A, "membership_end_date": "20260115"}, B)
    original = run(store, changed, "run2")
    assert sent(original) == [("", "1.21"), ("D", "2.23")]
    again = run(store, changed, "run2")              # Airflow retry/clear: same output, nothing saved twice
    pd.testing.assert_frame_equal(again.records, original.records)
    assert again.counts == original.counts
    run(store, frame(A, B), "run3")                   # a later run saved in between
    later = run(store, changed, "run2", save=False)
    pd.testing.assert_frame_equal(later.records, original.records)
    assert store.runs()["run_id"].tolist() == ["run1", "run2", "run3"]


# ------------------------------------------------------------------ the diff alone (no store)
def test_none_and_empty_string_are_equal_and_hand_made_history_works_without_hash_columns():
    last = frame({**A, "dsea": ""}, C)
    cur = frame(A, {**C, "membership_end_date": ""})
    result = compute_transactions(cur, LAYOUT, last, "submission", ScopeFilter())
    assert result.counts == {"new": 0, "changed": 1, "unchanged": 1, "deleted": 0}
    assert sent(result) == [("", "2.23")]


def test_an_empty_scope_set_deletes_nothing_and_none_means_everything():
    last = frame(A, C)
    for scope, expected in ((ScopeFilter(schools=set()), []), (ScopeFilter(), [("D", "2.23")])):
        result = compute_transactions(frame(A), LAYOUT, last, "submission", scope)
        assert sent(result) == expected


def test_no_history_at_all_and_no_records_at_all():
    empty = compute_transactions(frame(), LAYOUT, pd.DataFrame(), "submission", ScopeFilter())
    assert empty.records.empty and list(empty.records.columns) == LAYOUT.columns
    assert compute_transactions(frame(A), LAYOUT, pd.DataFrame(), "submission", ScopeFilter()).counts["new"] == 1


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode"):
        compute_transactions(frame(A), LAYOUT, frame(), "replace", ScopeFilter())


# --------------------------------------------------------------------------- records the SIS still has
def test_still_in_sis_matches_key_record_id_or_student_and_program_never_a_blank_part():
    from calpads.history.diff import still_in_sis

    history = frame(A, B, C, bob("2.29", program_code="191", membership_start_date="20251101"))
    # Ann's 101 is held back with a changed start date (the key differs; the Local Record ID does not).
    held = frame(rec("1.21", membership_start_date="20250903"))
    # Bob's 108 row lost its program code (not extracted): no identity part may match a blank; its id does.
    not_extracted = pd.DataFrame({"local_record_id": ["2.23"], "local_student_id": ["1002"], "program_code": [None]})
    assert still_in_sis(history, held, LAYOUT, not_extracted).tolist() == [True, False, True, False]
    # Student + program alone: a not-extracted 122 row of Ann without a service code (record id 1.22) names 1.22.08.
    by_identity = pd.DataFrame({"local_record_id": ["1.22"], "local_student_id": ["1001"], "program_code": ["122"]})
    assert still_in_sis(history, frame(), LAYOUT, by_identity).tolist() == [False, True, False, False]


def test_a_record_kept_from_a_delete_is_still_compared(store):
    first(store)
    # Run 2 publishes only Ann's 101 again (unchanged); 1.22.08 and 2.23 are not extracted. 2.23 is marked as
    # still in the SIS: no D for it, and the kept count says so; 1.22.08 is deleted; 1.21 stays unchanged.
    last = store.last_submitted("SPRG", LEA, YEAR, exclude_run_id="run2")
    keep = (last["local_record_id"] == "2.23").to_numpy()
    reader = functools.partial(store.fields_of, LAYOUT)
    result = compute_transactions(frame(A), LAYOUT, last, "submission", ScopeFilter(), never_delete=keep,
                                  read_fields=reader)
    assert sent(result) == [("D", "1.22.08")]
    assert result.counts == {"new": 0, "changed": 0, "unchanged": 1, "deleted": 1} and result.kept_from_delete == 1
    # Marking 1.21 too changes nothing for it: it is extracted, so it is compared (unchanged), never new.
    both = compute_transactions(frame(A), LAYOUT, last, "submission", ScopeFilter(),
                                never_delete=keep | (last["local_record_id"] == "1.21").to_numpy(), read_fields=reader)
    assert sent(both) == [("D", "1.22.08")] and both.counts["unchanged"] == 1


def test_kept_rows_as_a_function_are_asked_about_the_rows_not_extracted_only_and_keys_can_be_given(store):
    first(store)
    last = store.last_submitted("SPRG", LEA, YEAR, exclude_run_id="run2")
    reader = functools.partial(store.fields_of, LAYOUT)
    as_array = compute_transactions(frame(A), LAYOUT, last, "submission", ScopeFilter(),
                                    never_delete=(last["local_record_id"] == "2.23").to_numpy(), read_fields=reader)
    asked = []

    def kept(rows: pd.DataFrame):
        asked.append(sorted(rows["local_record_id"]))
        return (rows["local_record_id"] == "2.23").to_numpy()

    as_function = compute_transactions(frame(A), LAYOUT, last, "submission", ScopeFilter(), never_delete=kept,
                                       read_fields=reader, keys=record_keys(frame(A), LAYOUT))
    pd.testing.assert_frame_equal(as_function.records, as_array.records)
    assert as_function.counts == as_array.counts and as_function.kept_from_delete == as_array.kept_from_delete == 1
    assert asked == [["1.22.08", "2.23"]]
    # The keys given are the ones compared: those of a changed end date make Ann's 101 an update.
    other_keys = record_keys(frame({**A, "membership_end_date": "1"}), LAYOUT)
    changed = compute_transactions(frame(A), LAYOUT, last, "submission", ScopeFilter(), never_delete=kept,
                                   read_fields=reader, keys=other_keys)
    assert changed.counts["changed"] == 1
    with pytest.raises(ValueError, match="keys"):
        compute_transactions(frame(A, C), LAYOUT, last, "submission", ScopeFilter(), keys=record_keys(frame(A), LAYOUT))


@pytest.mark.parametrize("names", [
    pd.Series(["1.21", None, "2.23", "3.1", "3.1"], dtype="str"),
    pd.Series(["1.21", None, 5, "3.1"], dtype=object),
    pd.Series([], dtype="str"),
])
def test_named_in_is_isin_of_the_names_as_text(names):
    from calpads.history.guard import named_in

    values = pd.Series(["2.23", None, "9.9", 5, "5", "3.1", "1.21", float("nan")], dtype=object)
    expected = values.isin(set(names.dropna().astype(str))).tolist()
    assert named_in(values, names).tolist() == expected
    assert named_in(values.astype("str"), names).tolist() == values.astype("str").isin(
        set(names.dropna().astype(str))).tolist()


def test_a_records_file_is_read_as_its_frame(store, tmp_path):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from calpads.history.diff import RecordsFile

    first(store)
    d = bob("2.25", program_code="191", membership_start_date="20251103", homeless_dwelling_type="110")
    records = frame({**A, "membership_end_date": "20260115"}, C, d)
    # As the gate writes it: text as large_string, an all-blank column of Arrow's null type.
    table = pa.Table.from_pandas(records, preserve_index=False)
    table = table.cast(pa.schema([pa.field(f.name, pa.null() if records[f.name].isna().all() else pa.large_string())
                                  for f in table.schema]))
    pq.write_table(table, tmp_path / "publishable.parquet")
    as_read = pd.read_parquet(tmp_path / "publishable.parquet", columns=LAYOUT.columns)
    file = RecordsFile(tmp_path / "publishable.parquet", LAYOUT)
    assert len(file) == 3 and file.keys().equals(record_keys(as_read, LAYOUT))
    for positions in (None, np.array([], dtype=np.int64), np.array([0, 2]), np.arange(3)):
        expected = as_read if positions is None else as_read.iloc[positions]
        pd.testing.assert_frame_equal(file.rows(positions), expected.reset_index(drop=True))
    last = store.last_submitted("SPRG", LEA, YEAR, exclude_run_id="run2")
    reader = functools.partial(store.fields_of, LAYOUT)
    for mode in ("submission", "non_submission"):
        by_file = compute_transactions(file, LAYOUT, last, mode, ScopeFilter(), read_fields=reader)
        by_frame = compute_transactions(as_read, LAYOUT, last, mode, ScopeFilter(), read_fields=reader)
        pd.testing.assert_frame_equal(by_file.records, by_frame.records)
        assert by_file.counts == by_frame.counts
    assert by_frame.counts == {"new": 1, "changed": 1, "unchanged": 1, "deleted": 0}


@pytest.mark.parametrize(("scope", "deleted"), [
    (ScopeFilter(), ["1.22.08", "2.30"]),
    (ScopeFilter(programs={"101", "108"}), ["2.30"]),
    (ScopeFilter(students={"1002"}, schools={S1}), []),
])
def test_a_history_read_without_the_state_columns_gives_the_same_diff(store, scope, deleted):
    from calpads.history.diff import still_in_sis

    d = bob("2.29", program_code="191", membership_start_date="20251101")
    e = bob("2.30", program_code="101", membership_start_date="20251102", school_of_attendance=S2)
    run(store, frame(A, B, C, d, e), "run1")
    # Run 2: only A is published. C is held back under a changed key (kept by its Local Record ID); d's program
    # row is not extracted (kept by student + program); B and e become deletes where in scope.
    held = frame({**C, "membership_start_date": "20251002"})
    not_extracted = pd.DataFrame({"local_record_id": ["x"], "local_student_id": ["1002"], "program_code": ["191"]})
    kept = functools.partial(still_in_sis, held_back=held, layout=LAYOUT, not_extracted=not_extracted)
    reader = functools.partial(store.fields_of, LAYOUT)
    full = store.last_submitted("SPRG", LEA, YEAR, exclude_run_id="run2")
    lean = store.last_submitted("SPRG", LEA, YEAR, exclude_run_id="run2", state_columns=scope.columns(LAYOUT))
    assert set(lean.columns) < set(full.columns)
    expected = compute_transactions(frame(A), LAYOUT, full, "submission", scope,
                                    never_delete=still_in_sis(full, held, LAYOUT, not_extracted), read_fields=reader)
    got = compute_transactions(frame(A), LAYOUT, lean, "submission", scope, never_delete=kept, read_fields=reader)
    pd.testing.assert_frame_equal(got.records, expected.records)
    assert (got.counts, got.kept_from_delete) == (expected.counts, expected.kept_from_delete)
    assert [r[1] for r in sent(got) if r[0] == "D"] == deleted
