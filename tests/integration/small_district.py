"""A small hand-made district for the SENR, STAS and LEAP tests; every expected value is worked out by hand
in the test modules' comments from the rows below (never copied from the program's output).

Calendar (both schools): September 2025 only. Sep 1 (Mon) is Labor Day, so the in-session days are
Tue 2 - Fri 5 (4), 8-12 (5), 15-19 (5), 22-26 (5), 29-30 (2) = 21 days.
Schools: A = number 100, CDS 1111111; B = number 200, CDS 2222222. LEA 1234567.
Daily codes (per school): A EXCUSED/Absent, U UNEXCUSED/Absent, S OUT_OF_SCHOOL_SUSPENSION/Absent,
ISS IN_SCHOOL_SUSPENSION/Present, IS INDEPENDENT_STUDY/Absent, T PRESENT/Present (tardy).

Students (STUDENTS.ID; Local Student ID = 100000 + id; SSID = 1000000000 + id):
1 grade 4, A all month. Absent: 3 A, 4 U, 10 S, 11 ISS, 12 IS; 15 T (tardy = present).
  AR: Sat 6 240 min, Sat 13 300, Sat 20 120, Sat 27 120.
2 grade 2, A from Sep 2 with EXITDATE Sep 15 (REENROLLMENTS; last day Fri 12; exit code T160, a transfer),
  then B from Sep 15 (STUDENTS).
  Absent: A: 5 U; an A row on 15 (after the exit: must not count); B: 16 A, 17 A.
  AR: Sat 13 240 min, Sat 20 230, Sat 27 120.
3 grade 5, B all month. 8-12 IS (5 days), 22 S. ELP: registered ELO-P and ASES; sessions ELO-P 3, ASES 3,
  ELO-P Sat 6, ELO-P 9 (a day of independent study: absent from in-person school), AR 13 (not ELP).
4 grade 0 (K), A all month, no absences. Registered ELO-P, never attended. AR: Sat 6 180 min.
5 no SSID, A all month: registered ELO-P (held back: no SSID).
7 grade 4, A all month. U on 2,3,4,5,8,9,10,11,12,15,16,17 (12 days). AR 240 min on Sat/Sun 6,7,13,14,20,21,27,28
  and after school on 18,19,22,23 (12 days).
Student number 999999 is unknown to the SIS: one registration, one ELO-P session.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from tests.unit.sis_fixtures import Sis

A, B = 100, 200
CDS_A, CDS_B = "1111111", "2222222"
SEPT = ("2025-09-01", "2025-09-30")
CODES = [("A", "Absent", "EXCUSED"), ("U", "Absent", "UNEXCUSED"), ("S", "Absent", "OUT_OF_SCHOOL_SUSPENSION"),
         ("ISS", "Present", "IN_SCHOOL_SUSPENSION"), ("IS", "Absent", "INDEPENDENT_STUDY"), ("T", "Present", "PRESENT")]


def code_id(school: int, code: str) -> int:
    return school * 10 + [c[0] for c in CODES].index(code) + 1


def build_sis(engine: sa.Engine) -> Sis:
    sis = Sis(engine)
    for number, cds in ((A, CDS_A), (B, CDS_B)):
        sis.add_school(number, cds, first=SEPT[0], last=SEPT[1], holidays=("2025-09-01",))
        sis.insert("ATTENDANCE_CODE", [dict(ID=code_id(number, c), SCHOOLID=number, ATT_CODE=c, DESCRIPTION=c,
                                            PRESENCE_STATUS_CD=p, CALPADS_CATEGORY=cat) for c, p, cat in CODES])
    sis.add_student(1, first="Ana", last="Avila", school=A, grade=4, entry="2025-09-02")
    sis.add_student(2, first="Ben", last="Baker", school=B, grade=2, entry="2025-09-15")
    sis.add_reenrollment(2, A, "2025-09-02", "2025-09-15", grade=2, exitcode="T160")
    sis.add_student(3, first="Cy", last="Cruz", school=B, grade=5, entry="2025-09-02")
    sis.add_student(4, first="Di", last="Diaz", school=A, grade=0, entry="2025-09-02")
    sis.add_student(5, first="Ed", last="Eng", school=A, grade=3, entry="2025-09-02", ssid=None)
    sis.add_student(7, first="Flo", last="Ford", school=A, grade=4, entry="2025-09-02")
    rows = [(1, A, 3, "A"), (1, A, 4, "U"), (1, A, 10, "S"), (1, A, 11, "ISS"), (1, A, 12, "IS"), (1, A, 15, "T"),
            (2, A, 5, "U"), (2, A, 15, "U"), (2, B, 16, "A"), (2, B, 17, "A"),
            *[(3, B, d, "IS") for d in (8, 9, 10, 11, 12)], (3, B, 22, "S"),
            *[(7, A, d, "U") for d in (2, 3, 4, 5, 8, 9, 10, 11, 12, 15, 16, 17)]]
    sis.insert("ATTENDANCE", [dict(ID=i + 1, STUDENTID=s, SCHOOLID=school, ATT_DATE=f"2025-09-{d:02d}",
                                   ATTENDANCE_CODEID=code_id(school, c), ATT_MODE_CODE="ATT_ModeDaily")
                              for i, (s, school, d, c) in enumerate(rows)])
    return sis


def write_afterschool(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    sessions = [
        ("100001", CDS_A, 6, 240, "AR"), ("100001", CDS_A, 13, 300, "AR"), ("100001", CDS_A, 20, 120, "AR"),
        ("100001", CDS_A, 27, 120, "AR"),
        ("100002", CDS_A, 13, 240, "AR"), ("100002", CDS_B, 20, 230, "AR"), ("100002", CDS_B, 27, 120, "AR"),
        ("100003", CDS_B, 3, 90, "ELO-P"), ("100003", CDS_B, 3, 60, "ASES"), ("100003", CDS_B, 6, 120, "ELO-P"),
        ("100003", CDS_B, 9, 90, "ELO-P"), ("100003", CDS_B, 13, 240, "AR"),
        ("100004", CDS_A, 6, 180, "AR"),
        *[("100007", CDS_A, d, 240, "AR") for d in (6, 7, 13, 14, 20, 21, 27, 28, 18, 19, 22, 23)],
        ("999999", CDS_A, 4, 60, "ELO-P"),
    ]
    ssid = {"100001": "1000000001", "100003": "", "100007": "1000000007"}   # the platform often lacks SSIDs
    att = ["student_number,ssid,school_code,session_date,minutes,program"]
    att += [f"{n},{ssid.get(n, '')},{s},2025-09-{d:02d},{m},{p}" for n, s, d, m, p in sessions]
    (folder / "attendance.csv").write_text("\n".join(att) + "\n")
    reg = ["student_number,ssid,program,registration_date", "100003,,ELO-P,2025-08-20", "100003,,ASES,2025-08-21",
           "100004,1000000004,ELO-P,2025-08-25", "100005,,ELO-P,2025-08-25", "999999,,ELO-P,2025-08-26"]
    (folder / "registrations.csv").write_text("\n".join(reg) + "\n")
    return folder / "attendance.csv"


def stage_afterschool(sis: sa.Engine, store: sa.Engine, folder: Path, run_id: str = "manual__as",
                      extra_registrations: tuple[str, ...] = ()) -> dict:
    """What afterschool_sync does with the export above (plus extra registration lines): parse, gate and stage it
    in the store (calpads_store), where the LEAP and STAS builders read it."""
    from datetime import date

    from calpads.afterschool.sis_data import SqlReader
    from calpads.afterschool.stages import AfterschoolRun, import_export

    att = write_afterschool(folder)
    with att.with_name("registrations.csv").open("a") as fh:
        fh.writelines(f"{line}\n" for line in extra_registrations)
    (folder / "pub").mkdir(exist_ok=True)   # the publish root is a mounted share: a run never creates it
    run = AfterschoolRun("afterschool_sync", run_id, "2025-2026", date(2026, 6, 20), folder / "work" / run_id,
                         folder / "pub")
    reg = att.with_name("registrations.csv")
    return import_export(run, SqlReader(sis), store, att.read_bytes(), att.name,
                         registrations=(reg.read_bytes(), reg.name, ""))
