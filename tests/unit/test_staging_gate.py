"""The staging gate (calpads.quality.staging) on hand-made pulled frames, its count store on SQLite and
PostgreSQL, and its place in the extract stage (a real SQLite SIS: nothing is built when it fails)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from calpads import pipeline
from calpads.alerts.messages import failure_email
from calpads.quality.staging import (
    StagingCheck,
    StagingCheckFailed,
    check_frames,
    local_ids,
    min_rows,
    scope_key,
    staging_frames,
)
from calpads.run_scope import RunScope
from calpads.staging.store import StagedTables

SCOPE = RunScope.from_params("SPRG", {"academic_year": "2025-2026"}, today=date(2026, 5, 1))


def students(n: int, start: int = 1) -> pd.DataFrame:
    ids = [str(i) for i in range(start, start + n)]
    return pd.DataFrame({"student_id": ids, "dcid": [str(1000 + int(i)) for i in ids]}, dtype=object)


def programs(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["program_id", "student_id", "schoolid"], dtype=object)


GOOD_PROGRAMS = programs([("21", "1", "100"), ("22", "1", "100"), ("23", "2", "200")])
SCHOOLS = ["100", "200"]


def fired(result) -> dict[str, int]:
    return {f.rule_id: f.count for f in result.findings}


# --------------------------------------------------------------------------- counts
def test_count_drop_beyond_tolerance_is_an_error_with_the_plain_message():
    # 1 - 1204/1942 = 0.3800...: "38% fewer"
    result = check_frames(students(1204), GOOD_PROGRAMS, SCHOOLS, previous={"students": 1942, "programs": 3})
    assert fired(result) == {"STAGE-STUDENTS-COUNT": 1204}
    (finding,) = result.errors
    assert finding.text() == ("Tonight's SIS pull has 1,204 students, 38% fewer than last night's 1,942: the pull "
                              "may be incomplete. Check the SIS export, then clear the task.")


@pytest.mark.parametrize(("now", "tolerance", "fires"), [
    (800, 0.20, False),    # exactly 20% fewer: within the tolerance
    (799, 0.20, True),     # 20.1% fewer
    (900, 0.10, False),
    (899, 0.10, True),
    (1200, 0.20, False),   # more students is never a finding
    (0, 1.0, False),       # tolerance 100%: the count rule is off
])
def test_count_tolerance_boundaries(now, tolerance, fires):
    result = check_frames(students(now), GOOD_PROGRAMS, SCHOOLS, previous={"students": 1000}, tolerance=tolerance)
    assert ("STAGE-STUDENTS-COUNT" in fired(result)) is fires


def test_min_rows_by_hand():
    assert min_rows(None, 0.2) == 0
    assert min_rows(1942, 0.2) == 1554          # 1942 * 0.8 = 1553.6
    assert min_rows(1000, 0.2) == 800
    assert min_rows(10, 0.0) == 10


def test_program_count_drop_and_no_previous_count():
    assert fired(check_frames(students(2), GOOD_PROGRAMS, SCHOOLS, previous=None)) == {}
    result = check_frames(students(2), GOOD_PROGRAMS, SCHOOLS, previous={"programs": 10})
    assert fired(result) == {"STAGE-PROGRAMS-COUNT": 3}
    assert result.errors[0].message.startswith("Tonight's SIS pull has 3 program records, 70% fewer than last "
                                               "night's 10")


def test_an_accepted_drop_is_a_warning():
    result = check_frames(students(5), GOOD_PROGRAMS, SCHOOLS, previous={"students": 100}, accept_count_drop=True)
    assert [f.rule_id for f in result.warnings] == ["STAGE-STUDENTS-COUNT"]
    assert result.errors == []


# --------------------------------------------------------------------------- keys and references
def test_duplicate_student_id():
    st = pd.concat([students(3), pd.DataFrame({"student_id": ["3"], "dcid": ["2003"]})], ignore_index=True)
    result = check_frames(st, GOOD_PROGRAMS, SCHOOLS)
    assert fired(result) == {"STAGE-STUDENT-ID-UNIQUE": 2}     # both rows of the pair
    assert result.errors[0].examples == ["3"]
    assert "share a STUDENTS.ID" in result.errors[0].message and "(IDs 3)" in result.errors[0].message


def test_duplicate_dcid():
    st = pd.DataFrame({"student_id": ["1", "2", "3"], "dcid": ["1001", "1001", "1003"]})
    assert fired(check_frames(st, GOOD_PROGRAMS, SCHOOLS)) == {"STAGE-STUDENT-DCID-UNIQUE": 2}


def test_duplicate_program_id():
    # the same program ID twice for student 1: its Local Record ID repeats. The same program ID for another
    # student is a different record (Aeries's program IDs are per student).
    pr = programs([("21", "1", "100"), ("21", "1", "100"), ("21", "2", "200"), ("23", "2", "200")])
    result = check_frames(students(2), pr, SCHOOLS)
    assert fired(result) == {"STAGE-PROGRAM-ID-UNIQUE": 2}
    assert result.errors[0].examples == ["21"]
    assert "share a Local Record ID" in result.errors[0].message


def test_orphan_program_unknown_student():
    pr = programs([("21", "1", "100"), ("31", "99", "100"), ("32", "98", "200")])
    result = check_frames(students(2), pr, SCHOOLS)
    assert fired(result) == {"STAGE-PROGRAM-STUDENT-KNOWN": 2}
    # the message names the program rows by their own (local) ids
    assert result.errors[0].examples == ["31", "32"]
    assert "(IDs 31, 32)" in result.errors[0].message


def test_orphan_program_unknown_school():
    pr = programs([("21", "1", "100"), ("41", "2", "300")])
    result = check_frames(students(2), pr, SCHOOLS)
    assert fired(result) == {"STAGE-PROGRAM-SCHOOL-KNOWN": 1}
    assert result.errors[0].examples == ["41"]


def test_a_clean_pull_fires_nothing_and_empty_frames_run():
    assert fired(check_frames(students(2), GOOD_PROGRAMS, SCHOOLS, previous={"students": 2, "programs": 3})) == {}
    empty = check_frames(students(0), programs([]), [], previous=None)
    assert empty.findings == [] and empty.counts == {"students": 0, "programs": 0}


def test_examples_are_capped():
    pr = programs([(str(50 + i), "99", "100") for i in range(8)])
    f = check_frames(students(1), pr, SCHOOLS).errors[0]
    assert f.count == 8 and len(f.examples) == 5 and f.message.count(",") >= 5 and ", ..." in f.message


# --------------------------------------------------------------------------- frames from a pull
_N = iter(range(10**6))


def pull(n_students: int, *, lea: str = "1234567", extra_programs: list[tuple] = ()) -> StagedTables:
    """Staged contract tables (calpads.staging) of a district: ids as the SIS holds them (ints), names and birth
    dates present. extra_programs: (program ID, STUDENTS.ID, school number) rows."""
    import tempfile
    from pathlib import Path

    staged = StagedTables(Path(tempfile.mkdtemp(prefix=f"staging-gate-{next(_N)}-")))
    staged.reset()
    staged.write_frame("prefs", pd.DataFrame({"id": [1], "name": ["districtnumber"], "value": [lea],
                                              "schoolid": [0]}))
    staged.write_frame("schools", pd.DataFrame({"school_number": [100, 200],
                                                "alternate_school_number": ["7654321", "7654322"],
                                                "state_excludefromreporting": [0, 0]}))
    staged.write_frame("students", pd.DataFrame({
        "id": np.arange(1, n_students + 1), "dcid": np.arange(1001, 1001 + n_students),
        "first_name": ["Ann"] * n_students, "last_name": ["Lee"] * n_students, "dob": ["2015-03-04"] * n_students,
        "state_studentnumber": ["1000000001"] * n_students,
    }))
    rows = [(100 + i, i, 100) for i in range(1, n_students + 1)] + list(extra_programs)
    staged.write_frame("s_ca_stu_calpadsprograms_c", pd.DataFrame(
        [(pid, 1000 + sid, school) for pid, sid, school in rows], columns=["id", "studentsdcid", "schoolid"]))
    return staged


def test_staging_frames_keep_local_ids_only():
    st, pr, schools = staging_frames(pull(3))
    assert list(st.columns) == ["student_id", "dcid"] and list(pr.columns) == ["program_id", "student_id", "schoolid"]
    # Integer ids without a blank stay numbers (no Python string per id); they read as the same local ids.
    assert [str(v) for v in st["student_id"]] == ["1", "2", "3"] and [str(v) for v in schools] == ["100", "200"]
    assert [str(v) for v in pr["student_id"]] == ["1", "2", "3"]   # a program's student: the STUDENTS.ID of its DCID


def test_integer_ids_find_the_same_students_as_text_ids():
    """The integer path's look-up of a program's student (last student with the DCID; none when unknown) is the
    text path's dict look-up."""
    from calpads.quality.staging import _integer_frames

    s = pd.DataFrame({"id": [1, 2, 3, 4], "dcid": [10, 20, 20, 40]})          # DCID 20 twice: the last wins
    p = pd.DataFrame({"id": [7, 8, 9, 6], "studentsdcid": [20, 99, 10, 40], "schoolid": [100, 100, 300, 100]})
    students, programs, schools = _integer_frames(s, pd.Series([100, 200]), p)
    by_dcid = dict(zip(local_ids(s["dcid"]), local_ids(s["id"]), strict=True))
    expected = [by_dcid.get(d) for d in local_ids(p["studentsdcid"])]
    assert [None if pd.isna(v) else str(v) for v in programs["student_id"]] == expected == ["3", None, "1", "4"]
    assert schools == [100, 200] and students["dcid"].tolist() == [10, 20, 20, 40]


def test_local_ids():
    assert local_ids(pd.Series([1, 2])).tolist() == ["1", "2"]
    assert local_ids(pd.Series([1.0, np.nan, 3.0])).tolist() == ["1", None, "3"]
    assert local_ids(pd.Series(["17", " 18 ", "", None], dtype=object)).tolist() == ["17", "18", None, None]


# --------------------------------------------------------------------------- count store + hook
@pytest.fixture
def store(store_engine):
    return store_engine


def test_counts_are_compared_with_the_last_accepted_pull_of_the_same_scope(store):
    StagingCheck("SPRG", SCOPE, "run1", store)(pull(100))                     # first pull: nothing to compare

    with pytest.raises(StagingCheckFailed) as exc:                             # 40% fewer students
        StagingCheck("SPRG", SCOPE, "run2", store)(pull(60))
    assert str(exc.value).startswith("Tonight's SIS pull has 60 students, 40% fewer than last night's 100")
    assert "60 program records, 40% fewer than last night's 100" in str(exc.value)

    # the failed pull is not a baseline: the next night is compared with run1 again
    check = StagingCheck("SPRG", SCOPE, "run3", store)
    check(pull(95))
    assert check.summary["previous_counts"] == {"students": 100, "programs": 100}
    assert check.summary["passed"] is True

    # a retry of run3 (cleared task) replaces its own rows and is compared with run1, not with itself
    retry = StagingCheck("SPRG", SCOPE, "run3", store)
    retry(pull(90))
    assert retry.summary["previous_counts"] == {"students": 100, "programs": 100}
    with store.connect() as c:
        assert c.execute(sa.text("SELECT COUNT(*) FROM calpads_staging_counts WHERE run_id = 'run3'")).scalar() == 2

    # a narrower scope (one school) is its own series: no comparison with the district-wide pulls
    one_school = RunScope.from_params("SPRG", {"academic_year": "2025-2026", "schools": ["7654321"]},
                                      today=date(2026, 5, 1))
    assert scope_key(one_school) != scope_key(SCOPE)
    narrow = StagingCheck("SPRG", one_school, "run4", store)
    narrow(pull(5))
    assert narrow.summary["previous_counts"] is None

    # another LEA is its own series too
    other = StagingCheck("SPRG", SCOPE, "run5", store)
    other(pull(5, lea="7777777"))
    assert other.summary["previous_counts"] is None


def test_allow_mass_delete_accepts_a_drop_and_makes_it_the_baseline(tmp_path):
    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")
    StagingCheck("SPRG", SCOPE, "run1", store)(pull(100))
    allowed = RunScope.from_params("SPRG", {"academic_year": "2025-2026", "allow_mass_delete": True},
                                   today=date(2026, 5, 1))
    assert scope_key(allowed) == scope_key(SCOPE)
    accepted = StagingCheck("SPRG", allowed, "run2", store)
    accepted(pull(50))
    assert accepted.summary["rules"]["STAGE-STUDENTS-COUNT"]["severity"] == "warning"
    after = StagingCheck("SPRG", SCOPE, "run3", store)
    after(pull(50))
    assert after.summary["previous_counts"] == {"students": 50, "programs": 50}


def test_structural_errors_fail_without_a_store_and_name_no_student():
    with pytest.raises(StagingCheckFailed) as exc:
        StagingCheck("SPRG", SCOPE, "r", None)(pull(3, extra_programs=[(900, 77, 100), (901, 2, 300)]))
    text = str(exc.value)
    assert "(IDs 900)" in text and "(IDs 901)" in text
    for pii in ("Ann", "Lee", "2015", "1000000001"):
        assert pii not in text


def test_the_failure_email_shows_the_staging_message():
    exc = StagingCheckFailed("Tonight's SIS pull has 1,204 students, 38% fewer than last night's 1,942: the pull "
                             "may be incomplete. Check the SIS export, then clear the task.")
    subject, body = failure_email(dag_id="calpads_sprg", run_id="r1", task_id="extract_records", try_number=1,
                                  exception=exc, log_url=None)
    assert "extract_records" in subject
    assert "38% fewer than last night&#x27;s 1,942" in body and "Check the SIS export, then clear the task." in body
    assert "allow_mass_delete" in body


# --------------------------------------------------------------------------- in the extract stage
def test_extract_stops_before_building_when_the_pull_shrinks(tmp_path):
    from tests.integration.test_pipeline_sprg import make_sis

    sis = make_sis(tmp_path / "sis.db")
    store = sa.create_engine(f"sqlite:///{tmp_path}/store.db")

    def ctx(run_id: str) -> pipeline.RunContext:
        return pipeline.RunContext("SPRG", "calpads_sprg", run_id, SCOPE, tmp_path / run_id, tmp_path / "pub")

    out = pipeline.extract(ctx("run1"), sis, store_engine=store, count_tolerance=0.2)
    assert out["staging_counts"] == {"students": 2, "programs": 4}
    assert ctx("run1").state()["staging"]["passed"] is True
    with sis.begin() as c:   # Bob (student 2) and his programs disappear from the SIS export
        c.exec_driver_sql("DELETE FROM S_CA_STU_CALPADSPROGRAMS_C WHERE STUDENTSDCID = "
                          "(SELECT DCID FROM STUDENTS WHERE ID = 2)")
        c.exec_driver_sql("DELETE FROM STUDENTS WHERE ID = 2")
    with pytest.raises(StagingCheckFailed, match="has 1 students, 50% fewer than last night's 2"):
        pipeline.extract(ctx("run2"), sis, store_engine=store, count_tolerance=0.2)
    assert not ctx("run2").path(pipeline.RECORDS).exists()    # nothing was built
    # a looser tolerance lets the same pull through
    pipeline.extract(ctx("run3"), sis, store_engine=store, count_tolerance=0.6)
    assert ctx("run3").path(pipeline.RECORDS).exists()
