"""Every page and email body built from the Jinja2 templates (calpads.templates) escapes what it prints: a value
carrying markup (a Local Record ID, a school code, a file name, a vendor's error) comes out as text, quotes
escaped as html.escape does, None and NaN blank."""

from __future__ import annotations

import html
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from calpads import templates
from calpads.afterschool import reports
from calpads.afterschool.reconcile import KINDS
from calpads.afterschool.stages import summary_email
from calpads.history.ods import FIELDS_DIFFER, OdsComparison
from calpads.history.ods import render_html as ods_html
from calpads.maintenance import swept_email
from calpads.quality.gate import run_gate
from calpads.quality.report import render_deletes_html, render_html
from tests.unit.test_gate_rules import RUN_DATE, base_record, frame

EVIL = "<script>alert('x')</script>"
SAFE = html.escape(EVIL)           # &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;


def assert_escaped(page: str, times: int = 1) -> None:
    assert "<script" not in page
    assert page.count(SAFE) >= times, page


def test_values_print_as_html_escape_does_and_none_or_nan_blank() -> None:
    assert templates.escaped(EVIL) == SAFE
    assert templates.escaped('a "b" & c') == "a &quot;b&quot; &amp; c"
    assert templates.escaped(None) == "" and templates.escaped(float("nan")) == "" and templates.escaped(pd.NA) == ""
    assert templates.escaped(12) == "12"


def test_report_not_extracted_table_escapes_ids_school_and_reason() -> None:
    result = run_gate(frame([base_record()]), "SPRG", RUN_DATE)
    rows = pd.DataFrame([{"local_record_id": EVIL, "local_student_id": EVIL, "school_of_attendance": EVIL,
                          "reason": "bad <b>code</b>"}])
    page = render_html(result, run_id="r1", record_type="SPRG", data_docs=None, not_extracted=rows)
    assert "Not extracted (1)" in page
    assert_escaped(page, times=3)
    assert "bad &lt;b&gt;code&lt;/b&gt;" in page and "<b>code</b>" not in page


def test_deletes_page_escapes_run_counts_and_records() -> None:
    listing = pd.DataFrame([{"local_record_id": EVIL, "local_student_id": "S1", "school_of_attendance": "0001",
                             "program_code": "144", "why": EVIL, "student_still_enrolled": "Y"}])
    summary = {"count": 1, "of_enrolled_students": 1, "by_program": {EVIL: 1}, "by_school": {"0001": 1}}
    page = render_deletes_html(listing, summary, run_id=EVIL, record_type="SPRG")
    assert "still enrolled: the run stopped" in page and "<b>1</b> record(s) deleted" in page
    assert_escaped(page, times=5)     # title, run line, per program, record id, why


def test_ods_comparison_page_escapes_file_name_run_and_cells() -> None:
    rows = pd.DataFrame([{"status": FIELDS_DIFFER, "local_record_id": EVIL, "field": "school", "sis": None,
                          "calpads": EVIL}])
    page = ods_html(OdsComparison(rows, {FIELDS_DIFFER: 1, "sis_records": 3}), run_id=EVIL, record_type="SPRG",
                    ods_name=EVIL, base="ods")
    assert "SIS records: 3" in page and "<td>None</td>" not in page
    assert_escaped(page, times=4)


def test_maintenance_email_escapes_the_folder_and_who_left_it() -> None:
    subject, body = swept_email([{"folder": EVIL, "left_by": EVIL, "files": ["a", "b"]}])
    assert "1 interrupted" in subject and "2 file(s)" in body
    assert_escaped(body, times=2)


def test_afterschool_pages_escape_intros_and_tables() -> None:
    table = reports.table(pd.DataFrame({"local_student_id": [EVIL, None], "rule_id": ["AS1", "AS2"]}), limit=1)
    page = reports.page(EVIL, "import_intro.html", [("Rules broken", None), ("Held back", table)], source=EVIL,
                        gate={"rows": 2, "accepted": 1, "held_back": 1},
                        registrations={"source": EVIL, "rows": 1, "accepted": 1, "held_back": 0})
    assert "<p>None.</p>" in page and "1 more rows in the CSV" in page
    assert_escaped(page, times=5)     # title twice, export, registrations, the cell
    page = reports.page("Write-back", "writeback_intro.html", [], target_name=EVIL, inserts=1, updates=0,
                        verb="written", unchanged=0, invalid=0, table_exists=False)
    assert "no participation table yet" in page
    assert_escaped(page)


def test_afterschool_summary_email_escapes_errors_rules_and_paths() -> None:
    run = SimpleNamespace(academic_year="2025-2026", run_id="r1", run_folder=Path("/pub") / EVIL)
    results = {"errors": {"import": EVIL}, "import": {"status": "staged", "rules": {EVIL: {"count": 2, "fix": EVIL}}},
               "reconcile": {"kinds": {KINDS[0]: {"students": 1, "days": 3}}}, "recovery": {"report": EVIL}}
    _, body = summary_email(run, results)
    assert f"<td>{KINDS[0]}</td><td>1</td><td>3</td>" in body
    assert_escaped(body, times=5)
