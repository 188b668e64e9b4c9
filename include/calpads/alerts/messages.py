"""Build alert emails (subject + HTML) from run summaries.

Only counts, rule ids, rule texts, local ids of runs and links reach an email:
the summaries passed in carry no names, birth dates or SSIDs (the gate masks
them), and failure messages are reduced to our own exceptions' texts, which
are written to be free of student data. Anything else becomes "see the log".
"""

from __future__ import annotations

import html
from typing import Any

# Exceptions whose messages we write ourselves, in the team's words and without student data.
SAFE_EXCEPTIONS = {
    "GateFailed", "ScopeError", "SisDataError", "StructuralCharacterError", "MassDeleteBlocked",
    "AirflowFailException", "ParamValidationError",
}

WHAT_TO_DO = {
    "check_params": "A run parameter is wrong. Trigger the run again from the Params form with a corrected value.",
    "extract_records": "The SIS could not be read. Check that the SIS database is up and that the sis_db "
                       "connection's login still works (ask district IT), then clear the task to retry.",
    "quality_gate": "Too many records fail CALPADS rules, or the gate could not run. Open the validation report, "
                    "fix the listed records in the SIS, and run again.",
    "diff_against_history": "The submission history could not be read. Check the calpads_store database.",
    "publish_files": "The files could not be written to the publish folder. Check that the folder exists, is "
                     "writable and has free space; nothing partial was left. Clear the task to retry.",
    "save_submission_history": "The files were published but the submission history was not saved. Do not upload "
                               "until this task succeeds: clear it to retry (it never saves twice).",
}


def failure_email(*, dag_id: str, run_id: str, task_id: str, try_number: int, exception: BaseException | None,
                  log_url: str | None) -> tuple[str, str]:
    reason = "see the task log for details"
    if exception is not None and type(exception).__name__ in SAFE_EXCEPTIONS:
        reason = str(exception)
    elif exception is not None:
        reason = f"{type(exception).__name__} (details in the task log)"
    todo = WHAT_TO_DO.get(task_id, "Open the task log from the link below; if it is unclear, ask district IT.")
    subject = f"[CALPADS] FAILED: {dag_id} task {task_id} (run {run_id})"
    body = f"""<p><b>{html.escape(dag_id)}</b>: the task <b>{html.escape(task_id)}</b> failed
(attempt {try_number}) in run <code>{html.escape(run_id)}</code>.</p>
<p><b>What went wrong:</b> {html.escape(reason)}</p>
<p><b>What to do:</b> {html.escape(todo)}</p>
<p>No file from this run should be uploaded to CALPADS until the run succeeds.</p>
{f'<p>Task log: <a href="{html.escape(log_url)}">{html.escape(log_url)}</a></p>' if log_url else ''}"""
    return subject, body


def needs_summary_email(validation: dict[str, Any]) -> bool:
    return bool(validation.get("records_held_back") or validation.get("records_warned")
                or validation.get("bypass") or validation.get("ceiling_exceeded"))


def summary_email(*, dag_id: str, run_id: str, validation: dict[str, Any], published: dict[str, Any] | None,
                  report_link: str | None) -> tuple[str, str]:
    held = int(validation.get("records_held_back") or 0)
    warned = int(validation.get("records_warned") or 0)
    checked = int(validation.get("records_checked") or 0)
    bypass = bool(validation.get("bypass"))
    state = "BYPASSED VALIDATION" if bypass else f"{held} held back, {warned} warnings"
    subject = f"[CALPADS] {dag_id}: {state} ({run_id})"
    rows = []
    rules = validation.get("rules", {})  # rule id -> {count, severity, field, rule_text, fix}
    for rule_id, rule in sorted(rules.items(), key=lambda kv: (kv[1].get("severity") != "error",
                                                               -kv[1].get("count", 0), kv[0])):
        if not rule.get("count"):
            continue
        rows.append(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                html.escape(str(rule_id)), html.escape(str(rule.get("severity"))),
                int(rule.get("count", 0)), html.escape(str(rule.get("rule_text", ""))),
                html.escape(str(rule.get("fix", ""))),
            )
        )
    banner = ""
    if bypass:
        banner = ("<p style='color:#b00;font-weight:bold'>Validation was BYPASSED: records that fail CALPADS rules "
                  "were published. Review the report before uploading anything.</p>")
    files = ""
    if published:
        files = f"<p>Files published in <code>{html.escape(str(published.get('folder')))}</code>: " + ", ".join(
            html.escape(n) for n in published.get("files", [])) + "</p>"
    body = f"""{banner}<p><b>{html.escape(dag_id)}</b> run <code>{html.escape(run_id)}</code> checked {checked}
records: <b>{held}</b> held back (not published: they break an error rule) and <b>{warned}</b> published with
warnings.</p>
<table border="1" cellpadding="4" cellspacing="0"><tr><th>Rule</th><th>Severity</th><th>Records</th>
<th>What is wrong</th><th>How to fix it in the SIS</th></tr>
{''.join(rows)}</table>
<p>The records are listed by Local Record ID and Local Student ID in the validation report:
{f'<a href="{html.escape(report_link)}">{html.escape(report_link)}</a>' if report_link else '(no report link)'}</p>
{files}
<p>Held-back records will go in a later file once they are fixed in the SIS.</p>"""
    return subject, body
