"""The run's validation report: findings.csv, index.html, Data Docs; owner-only files; no PII anywhere."""

from __future__ import annotations

import csv
import json
import stat
from pathlib import Path

import pytest

from calpads.quality.gate import GateResult, run_gate
from calpads.quality.report import write_report
from tests.unit.test_gate_rules import BIRTH_DATE, FIRST_NAME, LAST_NAME, RUN_DATE, SSID, all_cases, base_record, frame

SECRETS = (FIRST_NAME, LAST_NAME, BIRTH_DATE, SSID)


@pytest.fixture(scope="module")
def gated() -> GateResult:
    records, _ = all_cases()
    return run_gate(records, "SPRG", RUN_DATE)


@pytest.fixture(scope="module")
def report(gated, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("report") / "report"
    return folder, write_report(gated, folder, run_id="manual__2026-01-15T00:00:00", record_type="SPRG")


def test_written_paths(report) -> None:
    folder, written = report
    assert written == {"findings": "findings.csv", "index": "index.html", "data_docs": "data_docs/index.html"}
    for rel in written.values():
        assert (folder / rel).is_file()
    assert list((folder / "data_docs" / "validations").rglob("*.html"))


def test_findings_csv_has_one_row_per_finding(report, gated) -> None:
    folder, _ = report
    with open(folder / "findings.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(gated.findings)
    assert set(rows[0]) == {"local_record_id", "local_student_id", "school_of_attendance", "rule_id", "severity",
                            "field", "column", "value", "rule_text", "fix"}
    gender = [r for r in rows if r["rule_id"] == "SPRG-GENDER-X-LEGAL"]
    assert len(gender) == 2 and gender[0]["severity"] == "error" and gender[0]["value"] == "X"


def test_index_html_shows_rules_fixes_and_records(report) -> None:
    folder, _ = report
    page = (folder / "index.html").read_text()
    assert "SPRG-END-BEFORE-EXIT" in page
    assert "must be on or before the last day of the student&#x27;s enrollment" in page
    assert "Move the program end date on or before the student&#x27;s last day at the school" in page
    assert "Records held back (errors)" in page and "Records published with warnings" in page
    assert "S1001" in page and "1930001" in page
    assert "VALIDATION BYPASSED" not in page


def test_data_docs_show_the_rule_in_plain_words(report) -> None:
    folder, _ = report
    (page,) = (folder / "data_docs" / "validations").rglob("*.html")
    text = page.read_text()
    assert "SPRG-START-AFTER-BIRTH" in text and "Correct the program start date" in text


def test_no_pii_in_any_report_file_or_summary(report, gated) -> None:
    folder, _ = report
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in {".html", ".csv", ".json", ".js"}:
            text = path.read_text(errors="replace")
            for secret in SECRETS:
                assert secret not in text, f"{secret!r} in {path}"
    summary = json.dumps(gated.summary)
    for secret in SECRETS:
        assert secret not in summary


def test_report_files_are_owner_only(report) -> None:
    folder, _ = report
    for path in [folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o007 == 0, f"{path} is world-accessible ({oct(mode)})"
        assert mode & 0o027 == 0, f"{path} is group-writable or -readable beyond 0640 ({oct(mode)})"


def test_banners_for_bypass_and_ceiling(tmp_path: Path) -> None:
    records = frame([base_record(i) for i in range(1, 10)] + [base_record(10, program_code="999")])
    result = run_gate(records, "SPRG", RUN_DATE, bypass=True, error_ceiling=0.05)
    write_report(result, tmp_path / "r", run_id="r1", record_type="SPRG")
    page = (tmp_path / "r" / "index.html").read_text()
    assert "VALIDATION BYPASSED" in page and "TOO MANY ERRORS" in page and "Published anyway" in page

    result = run_gate(records, "SPRG", RUN_DATE, error_ceiling=0.05)
    write_report(result, tmp_path / "s", run_id="r2", record_type="SPRG")
    page = (tmp_path / "s" / "index.html").read_text()
    assert "VALIDATION BYPASSED" not in page and "Nothing from this run was published" in page


def test_clean_run_report(tmp_path: Path) -> None:
    result = run_gate(frame([base_record()]), "SPRG", RUN_DATE)
    write_report(result, tmp_path / "r", run_id="r1", record_type="SPRG")
    page = (tmp_path / "r" / "index.html").read_text()
    assert "Every record passed every rule" in page
    assert (tmp_path / "r" / "findings.csv").read_text().startswith("local_record_id,")


# -- the report as a worklist ----------------------------------------------------------------------------------
def test_held_back_records_by_school_and_student_with_a_csv_per_school(report, gated) -> None:
    folder, _ = report
    errors = gated.findings[gated.findings["severity"] == "error"]
    schools = sorted(errors["school_of_attendance"].dropna().astype(str).unique())
    assert len(schools) >= 1
    page = (folder / "index.html").read_text()
    for code in schools:
        with open(folder / f"held_back_school_{code}.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == int((errors["school_of_attendance"].astype(str) == code).sum())
        assert {r["school_of_attendance"] for r in rows} == {code} and {r["severity"] for r in rows} == {"error"}
        assert f'id="school-{code}"' in page and f'href="held_back_school_{code}.csv"' in page
    # one cell per student spanning their findings
    student = errors["local_student_id"].value_counts()
    many = student[student > 1]
    if len(many):
        assert f'<td rowspan="{many.iloc[0]}">{many.index[0]}</td>' in page


def test_changes_since_the_last_run_verdict_files_and_run_link(gated, tmp_path: Path) -> None:
    errors = gated.findings[gated.findings["severity"] == "error"]
    first = errors.iloc[0]
    previous = {(str(first["rule_id"]), str(first["local_record_id"])), ("SPRG-OLD-RULE", "gone-1")}
    manifest = {"files": [{"name": "SPRG_1_2025-2026.txt", "kind": "full", "records": 5},
                          {"name": "SPRG_1_2025-2026_AU.txt", "kind": "AU", "records": 5}],
                "validation": gated.summary, "upload": "Upload the _AU file(s) and the _D file."}
    write_report(gated, tmp_path / "r", run_id="manual__x", record_type="SPRG", previous=previous,
                 previous_run="scheduled__before", run_link="../../../../../../dags/calpads_sprg/runs/manual__x",
                 manifest=manifest)
    page = (tmp_path / "r" / "index.html").read_text()
    held = gated.summary["records_held_back"]
    assert f"<b>READY, {held} held back</b>" in page and 'href="../SPRG_1_2025-2026_AU.txt"' in page
    assert "Upload the _AU file(s)" in page
    assert 'href="../../../../../../dags/calpads_sprg/runs/manual__x"' in page
    assert "Changes since the last run" in page and "scheduled__before" in page
    assert "<tr><td>SPRG-OLD-RULE</td><td>0</td><td class=\"\">0</td><td class=\"fixed\">1</td></tr>" in page
    plain = (tmp_path / "plain")
    write_report(gated, plain, run_id="manual__y", record_type="SPRG")
    assert "Changes since the last run" not in (plain / "index.html").read_text()


def test_held_back_listing_groups_as_pandas_does_with_blank_schools_and_students() -> None:
    """The one-pass grouping of the held-back listing gives pandas' groups: by school then student, blanks
    last and together, each student's rows in order, each school's count over every finding."""
    import pandas as pd

    from calpads.quality.report import LISTING_LIMIT, _grouped_errors

    rows = [("0000002", "S2", "r3", "RULE-B"), (None, "S9", "r9", "RULE-A"), ("0000001", None, "r5", "RULE-A"),
            ("0000001", "S1", "r2", "RULE-B"), ("0000001", "S1", "r1", "RULE-A"), (None, None, "r8", "RULE-A"),
            ("0000002", "S3", "r4", "RULE-A"), ("0000001", None, "r6", "RULE-C")]
    part = pd.DataFrame(rows, columns=["school_of_attendance", "local_student_id", "local_record_id", "rule_id"])
    got = _grouped_errors(part, {"0000001": "First School"})
    shown = part.sort_values(["school_of_attendance", "local_student_id", "local_record_id", "rule_id"],
                             kind="stable", na_position="last").head(LISTING_LIMIT)
    expected = [(("" if pd.isna(code) else code),
                 [("nan" if pd.isna(sid) else sid, list(rows["local_record_id"]))
                  for sid, rows in by_school.groupby("local_student_id", sort=False, dropna=False)])
                for code, by_school in shown.groupby("school_of_attendance", sort=False, dropna=False)]
    assert [(s["code"], [("nan" if pd.isna(st["id"]) else st["id"], [r.local_record_id for r in st["rows"]])
                         for st in s["students"]]) for s in got["schools"]] == expected
    assert [s["code"] for s in got["schools"]] == ["0000001", "0000002", ""]
    assert [s["findings"] for s in got["schools"]] == [4, 2, 2]
    assert got["schools"][0]["name"] == "First School" and got["findings"] == 8 and got["students"] == 4
