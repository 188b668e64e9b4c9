"""Build alert emails (subject + HTML) from run summaries.

Only counts, rule ids, rule texts, local ids of runs and links reach an email:
the summaries passed in carry no names, birth dates or SSIDs (the gate masks
them), and failure messages are reduced to our own exceptions' texts, which
are written to be free of student data. Anything else becomes "see the log".
"""

from __future__ import annotations

import html
from typing import Any

from calpads.failures import PartFailure, SummaryEmailFailed, reason

# Exceptions whose messages we write ourselves, in the team's words and without student data.
SAFE_EXCEPTIONS = {
    "GateFailed", "ScopeError", "SisDataError", "StructuralCharacterError", "MassDeleteBlocked",
    "EnrolledDeleteBlocked",   # Local Record IDs, Local Student IDs, program and school codes only
    "AirflowFailException", "ParamValidationError", "OdsFormatError", "StagingCheckFailed",
    "ApiSourceError", "AccessDenied", "MissingSourceData",   # SIS API sources: endpoint paths and statuses only
    "AfterschoolNotImported",   # LEAP / STAS 13.24 before afterschool_sync imported the year: names the DAG to run
}   # and every calpads.failures.PartFailure (the failing part named, our own text)

# The part a known exception blames (PartFailures carry their own), for the alert's first line.
PART_OF = {
    "ScopeError": "run parameters", "ParamValidationError": "run parameters", "GateFailed": "records",
    "StructuralCharacterError": "records", "MassDeleteBlocked": "delete guard",
    "EnrolledDeleteBlocked": "delete guard", "AfterschoolNotImported": "afterschool import",
    "OdsFormatError": "ODS file", "StagingCheckFailed": "SIS pull check", "ApiSourceError": "SIS",
    "AccessDenied": "SIS", "MissingSourceData": "SIS", "SisDataError": "SIS data",
}

# What to do for a failure of a known cause, whatever task raised it (the task wrapper may re-raise it
# as AirflowFailException "from" it, so that no retry repeats it: the cause is looked up too).
WHAT_TO_DO_FOR = {
    "GateFailed": "Nothing was published. Open the validation report, fix the listed records in the SIS, and run "
                  "again.",
    "MassDeleteBlocked": "Nothing was published. Check the run's date range, schools and program set, and that "
                         "the SIS pull is complete (compare the extracted record count with earlier runs). If the "
                         "deletes are real, trigger the run again with allow_mass_delete: true in its conf.",
    "EnrolledDeleteBlocked": "Nothing was published. Check each listed record in the SIS (report/deletes.csv of "
                             "the run folder lists them all): correct a typo or a program row removed by mistake, "
                             "then run again. If the deletes are real, trigger the run again with "
                             "allow_enrolled_deletes: true in its conf.",
    "ScopeError": "Nothing was published. A run parameter does not match the district's SIS: trigger the run "
                  "again from the Params form with a corrected value (the message lists the known values).",
    "OdsFormatError": "Nothing was published. Download the ODS extract again from CALPADS (caret-delimited, "
                      "unedited), or trigger the run again without ods_file.",
    "MissingSourceData": "Nothing was published. The configured SIS source cannot provide this file: set "
                         "[calpads] sis_source to a source that has these fields (see docs/sis-sources.md), "
                         "then trigger the run again.",
    "AccessDenied": "Nothing was published. Ask district IT to check the SIS API connection's credentials and "
                    "permissions (the integration_health DAG lists which data flows are granted), then clear the "
                    "task to retry.",
    "StagingCheckFailed": "Nothing was built or published: the SIS pull failed a check before any file was made. "
                          "Do what the message above says, then clear the extract task. If fewer students or "
                          "programs is real (e.g. a school left the district), trigger the run again with "
                          "allow_mass_delete: true to accept the new counts.",
}

WHAT_TO_DO = {
    "check_params": "A run parameter is wrong. Trigger the run again from the Params form with a corrected value.",
    "extract_records": "Nothing was published. The SIS pull or the building of the records stopped on an "
                       "unexpected error (named above; details in the task log). Send the task log to the "
                       "pipeline's maintainers, or ask district IT if it names the SIS.",
    "quality_gate": "Nothing was published. The quality gate stopped on an unexpected error (named above; details "
                    "in the task log). Send the task log to the pipeline's maintainers.",
    "diff_against_history": "Nothing was published. The comparison with the submission history stopped on an "
                            "unexpected error (named above; details in the task log). Send the task log to the "
                            "pipeline's maintainers.",
    "publish_files": "The files could not be written to the publish folder. Check that the folder exists, is "
                     "writable and has free space; nothing partial was left. Clear the task to retry.",
    "save_submission_history": "The files were published but the submission history was not saved. Do not upload "
                               "until this task succeeds: clear it to retry (it never saves twice).",
}


def _chain(exception: BaseException | None) -> list[BaseException]:
    """The exception and what it was raised from or during (a task may re-raise our error as an
    AirflowFailException "from" it, or "from None" inside its except block)."""
    out: list[BaseException] = []
    while exception is not None and exception not in out and len(out) < 6:
        out.append(exception)
        exception = exception.__cause__ or exception.__context__
    return out


def failing_part(exception: BaseException | None) -> tuple[str | None, str | None]:
    """(the part that failed, what to do) for the first exception of the chain that names one."""
    for e in _chain(exception):
        if isinstance(e, PartFailure):
            return e.part, e.what_to_do
        name = type(e).__name__
        if name in PART_OF or name in WHAT_TO_DO_FOR:
            return PART_OF.get(name), WHAT_TO_DO_FOR.get(name)
    return None, None


def failure_email(*, dag_id: str, run_id: str, task_id: str, try_number: int, exception: BaseException | None,
                  log_url: str | None) -> tuple[str, str]:
    why = "see the task log for details"
    if exception is not None and (type(exception).__name__ in SAFE_EXCEPTIONS or isinstance(exception, PartFailure)):
        why = str(exception)
    elif exception is not None:
        why = f"{type(exception).__name__} (details in the task log)"
    part, todo = failing_part(exception)
    todo = todo or WHAT_TO_DO.get(task_id, "Open the task log from the link below; if it is unclear, ask district IT.")
    files_ready = any(isinstance(e, SummaryEmailFailed) and e.files_ready for e in _chain(exception))
    subject = f"[CALPADS] FAILED: {dag_id} task {task_id}{f' ({part})' if part else ''} (run {run_id})"
    if files_ready:
        subject = f"[CALPADS] {dag_id}: files are ready, summary email failed (run {run_id})"
    upload = ("<p>The run's files are ready: only its email failed.</p>" if files_ready else
              "<p>No file from this run should be uploaded to CALPADS until the run succeeds.</p>")
    body = f"""<p><b>{html.escape(dag_id)}</b>: the task <b>{html.escape(task_id)}</b> failed
(attempt {try_number}) in run <code>{html.escape(run_id)}</code>.</p>
{f'<p><b>Failing part:</b> {html.escape(part)}</p>' if part else ''}
<p><b>What went wrong:</b> {html.escape(why)}</p>
<p><b>What to do:</b> {html.escape(todo)}</p>
{upload}
{f'<p>Task log: <a href="{html.escape(log_url)}">{html.escape(log_url)}</a></p>' if log_url else ''}"""
    return subject, body


def summary_email_failed(published: dict[str, Any] | None, exc: BaseException, *,
                         history_pending: bool = False) -> SummaryEmailFailed:
    """The summary email task's error when the mail server fails, saying whether the run's files are ready
    (published, and saved as submitted when the run saves history: ``history_pending`` when not yet)."""
    cause = f"the mail server could not be reached or refused the message ({reason(exc)})"
    if published and published.get("folder") and not history_pending:
        return SummaryEmailFailed(
            f"The files are ready: {int(published.get('records') or 0)} records published in {published['folder']} "
            f"(manifest.json lists them). Only the summary email failed: {cause}.", files_ready=True)
    done = "published its files but did not save them as submitted" if published else "published no files"
    return SummaryEmailFailed(f"The summary email failed: {cause}. This run {done}: see the run's other failed "
                              f"task.", files_ready=False)


def needs_summary_email(validation: dict[str, Any], ods: dict[str, Any] | None = None,
                        deletes: dict[str, Any] | None = None, swept: list[dict[str, Any]] | None = None) -> bool:
    return bool(validation.get("records_held_back") or validation.get("records_warned")
                or validation.get("bypass") or validation.get("ceiling_exceeded") or ods
                or (deletes or {}).get("count") or swept)


def summary_email(*, dag_id: str, run_id: str, validation: dict[str, Any], published: dict[str, Any] | None,
                  report_link: str | None, ods: dict[str, Any] | None = None,
                  deletes: dict[str, Any] | None = None,
                  swept: list[dict[str, Any]] | None = None) -> tuple[str, str]:
    held = int(validation.get("records_held_back") or 0)
    warned = int(validation.get("records_warned") or 0)
    checked = int(validation.get("records_checked") or 0)
    bypass = bool(validation.get("bypass"))
    state = "BYPASSED VALIDATION" if bypass else f"{held} held back, {warned} warnings"
    if (deletes or {}).get("count"):
        state += f", {int(deletes['count'])} deletes"
    if swept:
        state += f", {len(swept)} interrupted folder(s) removed"
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
    elif validation.get("ceiling_exceeded"):
        banner = ("<p style='color:#b00;font-weight:bold'>Too many records fail error rules (more than the "
                  f"{float(validation.get('ceiling') or 0):.0%} ceiling): nothing from this run was published. "
                  "Fix the records in the report, then run again.</p>")
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
{_not_extracted_section(validation)}
{_deletes_section(deletes)}
{_ods_section(ods)}
{_swept_section(swept)}
<p>Held-back records will go in a later file once they are fixed in the SIS.</p>"""
    return subject, body


def _counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{html.escape(str(k))}: {int(v)}" for k, v in counts.items())


def _not_extracted_section(validation: dict[str, Any]) -> str:
    """Rows left out for a data problem, counted per reason (calpads.extracts.not_extracted)."""
    n = int(validation.get("not_extracted") or 0)
    if not n:
        return ""
    rows = "".join(f"<li>{html.escape(str(reason))}: <b>{int(count)}</b></li>"
                   for reason, count in (validation.get("not_extracted_by_reason") or {}).items())
    return (f"<p><b>{n}</b> not extracted (left out of the file because of a data problem in the SIS; listed in "
            f"the report's not_extracted.csv):</p><ul>{rows}</ul>")


def _deletes_section(deletes: dict[str, Any] | None) -> str:
    """The run's D records, counted (calpads.history.guard.delete_summary): never a surprise in the _D file."""
    if not deletes or not deletes.get("count"):
        return ""
    n = int(deletes["count"])
    enrolled = int(deletes.get("of_enrolled_students") or 0)
    blocked = bool(deletes.get("stopped"))          # a guard stopped the run (calpads.pipeline.diff)
    lead = (f"This run would delete <b>{n}</b> record(s) from CALPADS and was stopped (nothing published)"
            if blocked else f"This run deletes <b>{n}</b> record(s) from CALPADS (the _D file)")
    return (f"<p>{lead}: {enrolled} of students still enrolled, {int(deletes.get('key_changes') or 0)} because a "
            f"key field changed. Per program: {_counts(deletes.get('by_program') or {}) or '-'}. Per school: "
            f"{_counts(deletes.get('by_school') or {}) or '-'}. Every record is listed by Local Record ID in the "
            "report's deletes.html; check them before uploading the _D file.</p>")
def _swept_section(swept: list[dict[str, Any]] | None) -> str:
    """What this run removed from the publish folder: folders an interrupted publication left (hidden, never
    a result). Folder and file names only."""
    if not swept:
        return ""
    items = "".join(
        f"<li><code>{html.escape(str(s.get('folder')))}</code> ({html.escape(str(s.get('left_by')))}): "
        f"{len(s.get('files') or [])} file(s) removed"
        + (f": {html.escape(', '.join(s['files'][:10]))}{' ...' if len(s['files']) > 10 else ''}" if s.get('files')
           else "") + "</li>" for s in swept)
    return (f"<p><b>Cleaned up after an interrupted publication.</b> A publish was stopped part-way (e.g. the "
            f"worker was killed) and left an incomplete, hidden folder; it was never a result and has been "
            f"removed. If the run it belonged to did not finish, run it again.</p><ul>{items}</ul>")


def _ods_section(ods: dict[str, Any] | None) -> str:
    """Counts of the comparison with a CALPADS ODS file (calpads.history.ods), no records."""
    if not ods:
        return ""
    base = ("This run's files were computed against the ODS file (they bring CALPADS in line with the SIS)."
            if ods.get("diff_base") == "ods" else "This run's files were computed against the submission history.")
    report = str(ods.get("report") or "")
    return f"""<p><b>Compared with the CALPADS ODS file</b> <code>{html.escape(str(ods.get('file', '')))}</code>:
<b>{int(ods.get('not_in_calpads') or 0)}</b> records in the SIS but not in CALPADS,
<b>{int(ods.get('not_in_sis') or 0)}</b> in CALPADS but not in the SIS,
<b>{int(ods.get('fields_differ') or 0)}</b> with fields that differ ({int(ods.get('same') or 0)} identical).
{html.escape(base)} Details: {f'<a href="{html.escape(report)}">{html.escape(report)}</a>' if report else
'report/ods_comparison.html'}</p>"""
