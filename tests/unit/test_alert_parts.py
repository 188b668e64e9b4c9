"""Failure emails name the part that failed (whatever task raised it, and through the task's re-raise)
and say what to do; the summary email task's own failure says whether the files are ready."""

from __future__ import annotations

import errno

import pytest

from calpads.alerts.messages import failure_email, summary_email_failed
from calpads.failures import (
    HistoryChanged,
    PublishShareError,
    SisUnavailable,
    StoreUnavailable,
    SubmissionInProgress,
    WorkFolderError,
    failing_part,
    reason,
)


def email(task_id: str, exc: BaseException) -> tuple[str, str]:
    return failure_email(dag_id="calpads_sprg", run_id="r1", task_id=task_id, try_number=1, exception=exc,
                         log_url=None)


@pytest.mark.parametrize(("cls", "part", "advice"), [
    (StoreUnavailable, "history store", "calpads_store"),
    (WorkFolderError, "work folder", "calpads_work_root"),
    (PublishShareError, "publish share", "calpads_publish_root"),
    (SisUnavailable, "SIS", "ask district IT"),
    (SubmissionInProgress, "submission history", "Let it finish"),
    (HistoryChanged, "submission history", "Do not upload them"),
])
def test_each_part_is_named_with_what_to_do_whatever_task_raised_it(cls, part, advice):
    # e.g. the store, failing inside the SIS pull task: the task's fallback ("the SIS ...") must not win
    subject, body = email("extract_records", cls("our own words"))
    assert f"({part})" in subject and f"<b>Failing part:</b> {part}" in body
    assert "our own words" in body and advice in body
    assert "unexpected error" not in body


def test_a_part_failure_re_raised_by_the_task_is_still_named():
    from airflow.sdk.exceptions import AirflowFailException

    try:
        try:
            raise PublishShareError("Publish failed: the publish folder file:///mnt/calpads is missing")
        except PublishShareError as exc:
            raise AirflowFailException(str(exc)) from None   # how the tasks stop retries
    except AirflowFailException as outer:
        subject, body = email("publish_files", outer)
    assert "(publish share)" in subject and "is missing" in body and "calpads_publish_root" in body


def test_failing_part_wraps_only_the_errors_it_is_given_and_keeps_an_inner_part():
    with pytest.raises(WorkFolderError, match=r"^The work folder /w could not be created: Read-only file system "
                                              r"\(EROFS\)$"):
        with failing_part(WorkFolderError, "The work folder /w could not be created"):
            raise OSError(errno.EROFS, "Read-only file system", "/w")
    with pytest.raises(StoreUnavailable):   # the store failing inside the SIS pull stays the store's
        with failing_part(SisUnavailable, "The SIS could not be read"):
            raise StoreUnavailable("x")
    with pytest.raises(KeyError):            # anything else is not relabelled
        with failing_part(SisUnavailable, "The SIS could not be read"):
            raise KeyError("x")


def test_a_driver_error_shows_its_first_line_only_when_it_is_about_the_connection():
    import sqlalchemy as sa

    conn_error = sa.exc.OperationalError("SELECT 1", {}, Exception('could not connect to server: Connection refused\n'
                                                                   'Is the server running?'))
    assert reason(conn_error) == "OperationalError: could not connect to server: Connection refused"
    # A failed statement's text can quote a row (a name, a birth date): only the type is shown.
    data_error = sa.exc.IntegrityError("INSERT", {}, Exception("Failing row contains (Maria, Lopez, 2011-04-05)"))
    assert "Maria" not in reason(data_error) and "IntegrityError" in reason(data_error)


def test_a_mail_server_down_after_the_publish_says_the_files_are_ready():
    published = {"folder": "file:///srv/calpads/2025-2026/SPRG/r1", "records": 412, "files": ["a.txt"]}
    exc = summary_email_failed(published, ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))
    assert str(exc).startswith("The files are ready: 412 records published in file:///srv/calpads/2025-2026/SPRG/r1")
    assert "Only the summary email failed" in str(exc) and "Connection refused (ECONNREFUSED)" in str(exc)
    subject, body = email("send_run_summary", exc)
    assert "files are ready, summary email failed" in subject and "FAILED" not in subject
    assert "No file from this run should be uploaded" not in body and "smtp_default" in body
    # Not ready: nothing published, or published but the history not saved yet.
    for pub, pending in ((None, False), (published, True)):
        exc = summary_email_failed(pub, ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
                                   history_pending=pending)
        subject, body = email("send_run_summary", exc)
        assert "files are ready" not in str(exc) and "FAILED" in subject and "(summary email)" in subject
        assert "No file from this run should be uploaded" in body
