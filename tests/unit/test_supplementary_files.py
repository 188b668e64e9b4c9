"""The supplementary files' validation: every bad input stops the read with the file, the line, the column,
the record's local key and the rule; personal values are never echoed; nothing is skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from calpads.sources.supplementary import FILES, SupplementaryFileError, SupplementaryFolder, read_file

GOOD = {
    "schools.csv": "school_number,alternate_school_number,name,subdistrict\n100,6010037,Oak Grove,North\n",
    "students.csv": "student_number,state_studentnumber,dob,gender\n100001,1234567890,2014-05-06,F\n",
    "enrollment_codes.csv": "student_number,school_number,entrydate,grade_level,exitcode\n100001,100,2025-08-13,5,\n",
    "calendar_day.csv": "schoolid,date_value,insession\n100,2025-08-13,1\n100,2025-08-16,0\n",
    "attendance_code.csv": "id,schoolid,att_code,presence_status_cd,calpads_category\n1,100,A,Absent,EXCUSED\n"
                           "2,100,T,Present,\n",
    "attendance.csv": "studentid,schoolid,att_date,attendance_codeid\n100001,100,2025-08-13,1\n",
}


def folder_with(tmp_path: Path, **files: str) -> SupplementaryFolder:
    for name, text in {**GOOD, **{k.replace("_csv", ".csv"): v for k, v in files.items()}}.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return SupplementaryFolder(tmp_path)


def read_all(folder: SupplementaryFolder) -> dict[str, list]:
    return {name: folder.rows(name) for name in FILES}


def test_good_files_are_read_whole_with_defaults(tmp_path):
    rows = read_all(folder_with(tmp_path))
    assert rows["schools.csv"] == [{"school_number": "100", "alternate_school_number": "6010037", "name": "Oak Grove",
                                    "subdistrict": "North", "state_excludefromreporting": "0"}]
    assert rows["attendance.csv"][0]["att_mode_code"] == "ATT_ModeDaily"
    assert rows["attendance_code.csv"][1]["calpads_category"] is None
    assert len(rows["calendar_day.csv"]) == 2
    assert folder_with(tmp_path).supplied()["students"][:2] == ["student_number", "state_studentnumber"]


BAD = [
    ("calendar_day.csv", "schoolid,date_value,insession\n100,2025-13-01,1\n",
     "calendar_day.csv line 2 (schoolid 100, date_value 2025-13-01): date_value '2025-13-01' is not a date written "
     "YYYY-MM-DD."),
    ("calendar_day.csv", "schoolid,date_value,insession\n100,2025-08-13,yes\n", "insession 'yes' is not 0 or 1"),
    ("calendar_day.csv", "schoolid,date_value,insession\n100,2025-08-13,1\n100,2025-08-13,0\n",
     "calendar_day.csv line 3 (schoolid 100, date_value 2025-08-13): a second line for the same schoolid, "
     "date_value"),
    ("calendar_day.csv", "schoolid,date_value\n100,2025-08-13\n", "calendar_day.csv line 1: missing column(s) "
                                                                  "insession"),
    ("calendar_day.csv", "schoolid,date_value,insession,note\n100,2025-08-13,1,x\n",
     "column(s) note not defined for this file"),
    ("calendar_day.csv", "schoolid,date_value,insession,insession\n", "column(s) insession named twice"),
    ("calendar_day.csv", "schoolid,date_value,insession\n100,2025-08-13\n",
     "calendar_day.csv line 2: 2 fields where the header has 3."),
    ("calendar_day.csv", "", "calendar_day.csv line 1: the file is empty"),
    ("calendar_day.csv", 'schoolid,date_value,insession\n100,"2025-08-13,1\n', "calendar_day.csv line"),
    ("attendance_code.csv", "id,schoolid,att_code,presence_status_cd\n1,100,A,absent\n",
     "attendance_code.csv line 2 (id 1): presence_status_cd 'absent' is not Present or Absent."),
    ("attendance_code.csv", "id,schoolid,att_code,presence_status_cd,calpads_category\n1,100,A,Absent,SICK\n",
     "calpads_category 'SICK' is not one of EXCUSED"),
    ("attendance.csv", "studentid,schoolid,att_date,attendance_codeid\n100001,100,2025-08-13,\n",
     "attendance.csv line 2 (studentid 100001, schoolid 100): attendance_codeid is blank; it must be a whole number."),
    ("attendance.csv", "studentid,schoolid,att_date,attendance_codeid\nS-1,100,2025-08-13,1\n",
     "studentid 'S-1' is not digits only"),
    ("schools.csv", "school_number,alternate_school_number\nOak,6010037\n", "school_number 'Oak' is not a whole "
                                                                            "number"),
    ("enrollment_codes.csv", "student_number,school_number,entrydate,grade_level\n100001,100,2025-08-13,Kinder\n",
     "grade_level 'Kinder' is not a grade level number"),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_stops_the_read_naming_file_line_and_rule(tmp_path, name, text, message):
    folder = folder_with(tmp_path, **{name.replace(".csv", "_csv"): text})
    with pytest.raises(SupplementaryFileError) as err:
        read_all(folder)
    assert message in str(err.value)


def test_personal_values_are_never_echoed(tmp_path):
    (tmp_path / "students.csv").write_text("student_number,dob,legalfirstname\n100001,2014-05-06,Maria\n"
                                           "10000x,2014-05-06,Maria\n")
    with pytest.raises(SupplementaryFileError) as err:
        list(read_file(tmp_path / "students.csv", FILES["students.csv"]))
    text = str(err.value)
    assert "students.csv line 3" in text and "student_number '10000x' is not digits only" in text
    assert "Maria" not in text and "2014-05-06" not in text


def test_an_unknown_file_in_the_folder_is_refused_not_ignored(tmp_path):
    (tmp_path / "attendence.csv").write_text("x\n")
    with pytest.raises(SupplementaryFileError, match="attendence.csv, which is not one of its files"):
        SupplementaryFolder(tmp_path)


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(SupplementaryFileError, match="does not exist"):
        SupplementaryFolder(tmp_path / "nowhere")


def test_a_bom_and_crlf_are_read(tmp_path):
    (tmp_path / "calendar_day.csv").write_bytes("\ufeffschoolid,date_value,insession\r\n100,2025-08-13,1\r\n"
                                                .encode())
    rows = list(read_file(tmp_path / "calendar_day.csv", FILES["calendar_day.csv"]))
    assert rows == [(2, {"schoolid": "100", "date_value": "2025-08-13", "insession": "1"})]
