"""Comparing a run with a CALPADS ODS extract, the ODS as the diff base, and seeding the history from it.

Hand-made SIS (tests/unit/sis_fixtures.Sis) and a hand-written ODS file; SQLite and PostgreSQL
stores. Expected rows and files are worked out by hand below.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from calpads import pipeline
from calpads.alerts.messages import needs_summary_email, summary_email
from calpads.history import cli
from calpads.history.diff import ScopeFilter
from calpads.history.ods import OdsFormatError, compare, parse_ods, read_ods
from calpads.history.store import HistoryStore
from calpads.layouts import load_layout
from calpads.run_scope import RunScope
from tests.conftest import require_postgres  # noqa: F401
from tests.unit.sis_fixtures import LEA, Sis

LAYOUT = load_layout("SPRG")
YEAR = "2025-2026"
A = "7654321"
EOY2 = ScopeFilter(programs=set(LAYOUT.submissions["eoy2"]))


# store_engine: tests/conftest.py (SQLite and PostgreSQL)


def make_sis(path: Path) -> Sis:
    """Students 1-6 and 9 at school 100 (CDS A), born 2015-03-14, gender F (the helper's defaults)."""
    sis = Sis(sa.create_engine(f"sqlite:///{path}"))
    sis.add_school(100, A)
    for sid, first, last in [(1, "Ada", "Adams"), (2, "Ben", "Baker"), (3, "Cy", "Clark"), (4, "Dee", "Davis"),
                             (5, "Eve", "Evans"), (6, "Fay", "Ford"), (9, "Ivy", "Irwin")]:
        sis.add_student(sid, first=first, last=last)
    for sid, pid, code in [(1, 501, "101"), (2, 502, "108"), (3, 503, "162"), (4, 504, "174"), (5, 505, "180"),
                           (6, 506, "190"), (9, 509, "113")]:     # 113 without a CPA ID: held back by the gate
        sis.add_program(sid, 100, code, start="2025-09-02", program_id=pid)
    return sis


def fields(sid: int, pid: int | str, code: str, first: str, last: str, **over: str) -> list[str]:
    """The 25 SPRG fields the extract gives student ``sid``'s program (blank = "")."""
    values = {c: "" for c in LAYOUT.columns}
    values.update(record_type="SPRG", local_record_id=f"{sid}.{pid}", reporting_lea=LEA, school_of_attendance=A,
                  academic_year_id=YEAR, ssid=f"{1000000000 + sid}", local_student_id=f"{100000 + sid}",
                  legal_first_name=first, legal_last_name=last, birth_date="20150314", gender_code="F",
                  program_code=code, membership_code="3", membership_start_date="20250902")
    values.update(over)
    return [values[c] for c in LAYOUT.columns]


def ods_line(values: list[str]) -> str:
    return "^".join(["SPRG-R", *values[1:], "20251001", "20251002"])


ODS_RECORDS = [
    fields(1, 501, "101", "Ada", "Adams"),                                         # same as the SIS
    fields(2, 502, "108", "Ben", "Baker", membership_end_date="20251215"),         # SIS has no end date
    fields(4, 504, "174", "Dee", "Davis"),                                         # same
    fields(5, 505, "180", "Eve", "Evans"),                                         # same
    fields(6, 506, "190", "Fay", "Ford"),                                          # same
    fields(8, 601, "180", "Hal", "Hill"),                                          # not in the SIS
    fields(9, 509, "113", "Ivy", "Irwin", cpa_id="12345"),                         # SIS: no CPA ID (held back)
    fields(7, 507, "144", "Gus", "Green", membership_start_date="20250820",        # not eoy2: out of scope
           primary_disability_code="290", dsea=LEA),
]
# Clark's 162 (3.503) is in the SIS only.


def write_ods(path: Path, records: list[list[str]] = ODS_RECORDS, *, crlf: bool = False) -> Path:
    path.write_text(("\r\n" if crlf else "\n").join(ods_line(r) for r in records) + "\n", newline="")
    return path


def run(tmp_path: Path, sis: sa.Engine, store: sa.Engine, run_id: str, **params) -> Path:
    scope = RunScope.from_params("SPRG", {"academic_year": YEAR, **params}, today=date(2026, 5, 1))
    ctx = pipeline.RunContext("SPRG", "calpads_sprg", run_id, scope, tmp_path / "work" / run_id, tmp_path / "pub")
    pipeline.extract(ctx, sis)
    pipeline.gate(ctx, run_date=scope.today, error_ceiling=0.5)
    pipeline.diff(ctx, store)
    pipeline.publish(ctx)
    pipeline.save_history(ctx, store)
    return Path(str(ctx.run_folder))


def lines(folder: Path, suffix: str = "") -> list[list[str]]:
    path = folder / f"SPRG_{LEA}_{YEAR}{suffix}.txt"
    return [ln.split("^") for ln in path.read_text().splitlines()] if path.exists() else []


def csv_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


# Worked out by hand: status order not_in_calpads, not_in_sis, fields_differ; then school, Local Student ID.
EXPECTED_CSV = [
    {"status": "not_in_calpads", "school_of_attendance": A, "local_student_id": "100003", "program_code": "162",
     "membership_start_date": "20250902", "service_code": "", "local_record_id_sis": "3.503",
     "local_record_id_calpads": "", "held_back_by_gate": "N", "fields_differ": "", "sis_values": "",
     "calpads_values": "", "calpads_last_updated": ""},
    {"status": "not_in_sis", "school_of_attendance": A, "local_student_id": "100008", "program_code": "180",
     "membership_start_date": "20250902", "service_code": "", "local_record_id_sis": "",
     "local_record_id_calpads": "8.601", "held_back_by_gate": "", "fields_differ": "", "sis_values": "",
     "calpads_values": "", "calpads_last_updated": "20251002"},
    {"status": "fields_differ", "school_of_attendance": A, "local_student_id": "100002", "program_code": "108",
     "membership_start_date": "20250902", "service_code": "", "local_record_id_sis": "2.502",
     "local_record_id_calpads": "2.502", "held_back_by_gate": "N", "fields_differ": "3.16 membership_end_date",
     "sis_values": "3.16=(blank)", "calpads_values": "3.16=20251215", "calpads_last_updated": "20251002"},
    {"status": "fields_differ", "school_of_attendance": A, "local_student_id": "100009", "program_code": "113",
     "membership_start_date": "20250902", "service_code": "", "local_record_id_sis": "9.509",
     "local_record_id_calpads": "9.509", "held_back_by_gate": "Y", "fields_differ": "3.19 cpa_id",
     "sis_values": "3.19=(blank)", "calpads_values": "3.19=12345", "calpads_last_updated": "20251002"},
]
EXPECTED_COUNTS = {"sis_records": 7, "calpads_records": 8, "calpads_records_in_scope": 7, "not_in_calpads": 1,
                   "not_in_sis": 1, "fields_differ": 2, "same": 4}


def test_submission_with_an_ods_file_reports_the_differences_and_sends_them(tmp_path, store_engine):
    sis = make_sis(tmp_path / "sis.db")
    ods = write_ods(tmp_path / "ods_sprg.txt", crlf=True)
    folder = run(tmp_path, sis.engine, store_engine, "ods_run", ods_file=f"file://{ods}")

    report = folder / "report"
    assert csv_rows(report / "ods_comparison.csv") == EXPECTED_CSV
    page = (report / "ods_comparison.html").read_text()
    assert "In CALPADS, not in the SIS" in page and "3.16 membership_end_date" in page
    for secret in ("Adams", "Hill", "1000000008", "20150314"):        # no names, SSIDs, birth dates
        assert secret not in page and secret not in (report / "ods_comparison.csv").read_text()
    for p in (report / "ods_comparison.csv", report / "ods_comparison.html"):
        assert stat.S_IMODE(os.stat(p).st_mode) & 0o077 in (0, 0o040), p          # owner (+group read) only
    for p in (tmp_path / "work" / "ods_run" / "ods_report").iterdir():
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, p

    # The diff base is the ODS (empty history): Baker's update, Clark's add, a D for Hill repeating CALPADS's
    # fields. Irwin's 113 is held back: never a delete. Green's 144 is outside eoy2. Sorted by last name.
    assert [(r[1], r[2]) for r in lines(folder)] == [("", "2.502"), ("", "3.503"), ("D", "8.601")]
    assert lines(folder, "_AU") == [fields(2, 502, "108", "Ben", "Baker"), fields(3, 503, "162", "Cy", "Clark")]
    assert lines(folder, "_D") == [["SPRG", "D", *fields(8, 601, "180", "Hal", "Hill")[2:]]]

    manifest = json.loads((folder / "manifest.json").read_text())
    ods_counts = manifest["counts"]["diff"]["ods_comparison"]
    assert {k: ods_counts[k] for k in EXPECTED_COUNTS} == EXPECTED_COUNTS
    assert ods_counts["diff_base"] == "ods" and ods_counts["file"] == "ods_sprg.txt"
    assert manifest["counts"]["diff"]["delete_guard"]["previously_submitted_in_scope"] == 7

    # The summary email carries the counts (and no records).
    assert needs_summary_email({}, ods_counts)
    _, body = summary_email(dag_id="calpads_sprg", run_id="ods_run", validation={}, published=None,
                            report_link=None, ods=ods_counts)
    assert "<b>1</b> records in the SIS but not in CALPADS" in body
    assert "<b>1</b> in CALPADS but not in the SIS" in body and "<b>2</b> with fields that differ" in body
    assert "computed against the ODS file" in body and "ods_comparison.html" in body
    assert not needs_summary_email({}, None)

    # Retry of the same run: byte-identical files and report.
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()
              and "data_docs" not in p.parts and p.name != "index.html"}
    run(tmp_path, sis.engine, store_engine, "ods_run", ods_file=f"file://{ods}")
    assert {p: (folder / p).read_bytes() for p in before} == before


def test_replacement_mode_reports_but_diffs_against_the_history(tmp_path, store_engine):
    sis = make_sis(tmp_path / "sis.db")
    ods = write_ods(tmp_path / "ods.txt")
    folder = run(tmp_path, sis.engine, store_engine, "repl", mode="replacement", ods_file=str(ods))
    assert csv_rows(folder / "report" / "ods_comparison.csv") == EXPECTED_CSV
    assert sorted(r[2] for r in lines(folder)) == ["1.501", "2.502", "3.503", "4.504", "5.505", "6.506"]
    assert lines(folder, "_D") == []
    assert json.loads((folder / "manifest.json").read_text())["counts"]["diff"]["ods_comparison"]["diff_base"] == \
        "history"


def test_seeding_from_ods_then_a_submission_sends_only_the_differences(tmp_path, store_engine, capsys):
    sis = make_sis(tmp_path / "sis.db")
    ods = write_ods(tmp_path / "ods.txt")
    url = store_engine.url.render_as_string(hide_password=False)
    args = ["seed-from-ods", "--file", str(ods), "--url", url, "--lea", LEA, "--academic-year", YEAR]
    assert cli.main(args) == 0
    assert "8 records in the ODS file; 8 saved" in capsys.readouterr().out
    assert cli.main(args) == 0                                            # the same file again: nothing new
    assert "already seeded from this file: nothing saved" in capsys.readouterr().out
    store = HistoryStore(store_engine)
    runs = store.runs("SPRG")
    sha = read_ods(str(ods), LAYOUT).sha256
    assert runs["run_id"].tolist() == [f"ods-seed:{sha}"] and runs["record_count"].tolist() == [8]

    # A normal submission (no ods_file) against the seeded history: the same three differences as above.
    folder = run(tmp_path, sis.engine, store_engine, "after_seed", save_history=True)
    assert [(r[1], r[2]) for r in lines(folder)] == [("", "2.502"), ("", "3.503"), ("D", "8.601")]
    # Then nothing: the history now matches the SIS (Irwin's held-back 113 and Green's 144 stay as seeded).
    assert lines(run(tmp_path, sis.engine, store_engine, "next")) == []
    assert store.runs("SPRG")["run_id"].tolist() == [f"ods-seed:{sha}", "after_seed"]


def test_seeding_refuses_a_malformed_file_and_saves_nothing(tmp_path, store_engine, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text(ods_line(ODS_RECORDS[0]) + "\n" + ods_line(ODS_RECORDS[1])[:-9] + "\n")
    url = store_engine.url.render_as_string(hide_password=False)
    assert cli.main(["seed-from-ods", "--file", str(bad), "--url", url, "--lea", LEA, "--academic-year", YEAR]) == 2
    err = capsys.readouterr().err
    assert "line 2: 26 fields, expected 27" in err and "Baker" not in err
    store = HistoryStore(store_engine)
    store.migrate()
    assert store.runs("SPRG").empty


def test_a_malformed_ods_fails_the_run_before_anything_is_published(tmp_path, store_engine):
    sis = make_sis(tmp_path / "sis.db")
    ods = tmp_path / "ods.txt"
    ods.write_text("\n".join([ods_line(ODS_RECORDS[0]), ods_line(ODS_RECORDS[1]),
                              ods_line(ODS_RECORDS[2]).replace("SPRG-R", "SENR-R", 1)]) + "\n")
    with pytest.raises(OdsFormatError, match="line 3: record type 'SENR-R', expected SPRG-R"):
        run(tmp_path, sis.engine, store_engine, "bad_ods", ods_file=str(ods))
    assert not list((tmp_path / "pub").rglob("*.txt"))


# ------------------------------------------------------------------------------------ parsing, no database
def test_every_bad_line_is_named_by_number_and_nothing_is_used():
    good = ods_line(ODS_RECORDS[0])
    text = "\n".join([good, "SPRG^" + good[7:], good.replace("^F^", "^F^^"), "", "HEADER^x"]) + "\n"
    with pytest.raises(OdsFormatError) as info:
        parse_ods(text.encode(), LAYOUT, name="x.txt")
    msg = str(info.value)
    assert "x.txt refused (4 bad line(s)" in msg
    assert "line 2: record type 'SPRG', expected SPRG-R" in msg
    assert "line 3: 28 fields, expected 27" in msg
    assert "line 4: 1 fields, expected 27" in msg and "line 5: 2 fields" in msg
    assert "line 1" not in msg and "Adams" not in msg and "1000000001" not in msg


def test_a_student_value_in_the_record_type_position_is_not_echoed():
    values = ODS_RECORDS[0]
    line = "^".join(["1000000001", *values[1:], "20251001", "20251002"])
    with pytest.raises(OdsFormatError, match=r"line 1: record type \(not shown\)"):
        parse_ods(line.encode(), LAYOUT)


def test_duplicate_keys_and_another_lea_or_year_are_refused():
    dup = "\n".join([ods_line(ODS_RECORDS[0]), ods_line(ODS_RECORDS[1]), ods_line(ODS_RECORDS[0])])
    with pytest.raises(OdsFormatError, match="line 3: same operational key as line 1"):
        parse_ods(dup.encode(), LAYOUT)
    other = fields(1, 501, "101", "Ada", "Adams", reporting_lea="7777777", academic_year_id="2024-2025")
    with pytest.raises(OdsFormatError) as info:
        parse_ods(ods_line(other).encode(), LAYOUT, lea=LEA, academic_year=YEAR)
    assert "line 1: Reporting LEA is not 1234567" in str(info.value)
    assert "line 1: Academic Year ID is not 2025-2026" in str(info.value)


def test_blank_values_bom_crlf_and_an_empty_file():
    data = ("\ufeff" + ods_line(ODS_RECORDS[1]) + "\r\n").encode()
    parsed = parse_ods(data, LAYOUT)
    row = parsed.records.iloc[0]
    assert row["record_type"] == "SPRG" and row["transaction_type"] is None and row["service_code"] is None
    assert row["membership_end_date"] == "20251215" and row["ods_last_updated"] == "20251002"
    assert parse_ods(b"", LAYOUT).records.empty
    with pytest.raises(OdsFormatError, match="not found"):
        read_ods("/nonexistent/ods.txt", LAYOUT)


def test_compare_ignores_calpads_records_outside_the_scope():
    ods = parse_ods("\n".join(ods_line(r) for r in ODS_RECORDS).encode(), LAYOUT).records
    sis = ods[ods["program_code"] == "101"][LAYOUT.columns]
    only_101 = compare(sis, ods, LAYOUT, ScopeFilter(programs={"101"}))
    assert only_101.rows.empty and only_101.counts["same"] == 1
    assert only_101.counts["calpads_records_in_scope"] == 1
    everything = compare(sis, ods, LAYOUT, ScopeFilter())
    assert everything.counts["not_in_sis"] == 7
    eoy2 = compare(sis, ods, LAYOUT, EOY2)
    assert eoy2.counts["not_in_sis"] == 6     # Green's 144 is not in eoy2
