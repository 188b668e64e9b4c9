"""Alert texts: what failed, in plain words, with no student data."""

from calpads.alerts.messages import failure_email, needs_summary_email, summary_email
from calpads.pipeline import GateFailed

VALIDATION = {
    "records_checked": 200, "records_held_back": 3, "records_warned": 1, "bypass": False,
    "rules": {
        "SPRG-CPA-113": {"count": 2, "severity": "error", "field": "3.19", "rule_text": "Program 113 needs a CPA ID",
                         "fix": "Enter the academy ID"},
        "SPRG-131-RESIDENCE": {"count": 1, "severity": "warning", "field": "3.13", "rule_text": "131 residence",
                               "fix": "Check SINF"},
        "SPRG.3.07.format": {"count": 1, "severity": "error", "field": "3.07", "rule_text": "SSID is 10 digits",
                             "fix": "Correct the SSID"},
    },
}


def test_summary_lists_each_rule_with_its_count_errors_first():
    subject, body = summary_email(dag_id="calpads_sprg", run_id="r1", validation=VALIDATION,
                                  published={"folder": "/pub/x", "files": ["SPRG_AU.txt"]}, report_link="/pub/x/r")
    assert "3 held back, 1 warnings" in subject
    assert body.index("SPRG-CPA-113") < body.index("SPRG.3.07.format") < body.index("SPRG-131-RESIDENCE")
    assert "<td>2</td>" in body and "Enter the academy ID" in body and "/pub/x/r" in body


def test_bypass_is_loud():
    subject, body = summary_email(dag_id="d", run_id="r", validation={**VALIDATION, "bypass": True},
                                  published=None, report_link=None)
    assert "BYPASSED" in subject and "BYPASSED" in body


def test_no_summary_email_for_a_clean_run():
    assert not needs_summary_email({"records_checked": 10, "records_held_back": 0, "records_warned": 0})
    assert needs_summary_email(VALIDATION)


def test_failure_email_keeps_our_own_message_and_hides_foreign_exception_text():
    _, body = failure_email(dag_id="d", run_id="r", task_id="quality_gate", try_number=1,
                            exception=GateFailed("12 of 100 SPRG records failed"), log_url=None)
    assert "12 of 100 SPRG records failed" in body and "Open the validation report" in body
    # A foreign exception may quote data (e.g. a driver error with a bound value): only its type is shown.
    _, body = failure_email(dag_id="d", run_id="r", task_id="extract_records", try_number=2,
                            exception=ValueError("bad value 'Maria Lopez' 2011-04-05"), log_url="http://x/log")
    assert "Maria" not in body and "2011-04-05" not in body and "ValueError" in body
    assert "ask district IT" in body and "http://x/log" in body
