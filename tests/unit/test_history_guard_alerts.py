"""The failure email for a blocked mass delete or a refused ODS file: our message, the cause's what-to-do."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowFailException

from calpads.alerts.messages import failure_email
from calpads.history.guard import MassDeleteBlocked, check_deletes
from calpads.history.ods import OdsFormatError


def blocked() -> MassDeleteBlocked:
    try:
        check_deletes(30, 100, record_type="SPRG")
    except MassDeleteBlocked as exc:
        return exc
    raise AssertionError("not blocked")


def email(exception: BaseException, task_id: str = "diff_against_history") -> str:
    return failure_email(dag_id="calpads_sprg", run_id="r", task_id=task_id, try_number=1, exception=exception,
                         log_url=None)[1]


def test_a_blocked_mass_delete_says_how_many_what_to_check_and_how_to_override():
    exc = blocked()
    for raised in (exc, _wrapped(exc)):               # as raised, and as the DAG task re-raises it (no retry)
        body = email(raised)
        assert "would delete 30 of the 100 previously submitted records in its scope (30%" in body
        assert "date range" in body and "SIS pull" in body and "allow_mass_delete: true" in body
        assert "The submission history could not be read" not in body


def test_a_refused_ods_file_says_to_download_it_again():
    body = email(_wrapped(OdsFormatError("ODS file x refused (1 bad line(s), nothing was used): line 3: ...")))
    assert "line 3" in body and "Download the ODS extract again" in body


def test_other_failures_keep_the_task_s_what_to_do():
    # (an unknown error is not blamed on the store: a store error is StoreUnavailable, which names it)
    assert "comparison with the submission history stopped on an unexpected error" in email(RuntimeError("boom"))


def _wrapped(exc: BaseException) -> AirflowFailException:
    try:
        raise AirflowFailException(str(exc)) from exc
    except AirflowFailException as wrapped:
        return wrapped
