"""The "Validation report" button of the quality gate task in the Airflow UI.

Airflow 3 extra links are XCom-backed: when a task instance finishes (success or failure),
the worker calls ``get_link`` of each of the operator's ``operator_extra_links`` and stores
the answer as the XCom ``_link_ValidationReportLink``; the serialized DAG only names the
link, and the API server reads that XCom to draw the button. No plugin registration is
needed, and ``@task`` operators get the link by setting ``operator_extra_links`` on the
task's operator (``attach_report_link``).

The quality_gate task pushes the run's report URL (``summary["report"]``: file:// or an
object-storage URL) as the XCom ``calpads_report_url`` before it returns or fails.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink

REPORT_URL_XCOM = "calpads_report_url"


class ValidationReportLink(BaseOperatorLink):
    name = "Validation report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        url = XCom.get_value(ti_key=ti_key, key=REPORT_URL_XCOM)
        return str(url) if url else ""


def attach_report_link(xcom_arg: Any) -> Any:
    """Give the task behind a @task call's XComArg the report button; returns the XComArg."""
    xcom_arg.operator.operator_extra_links = [ValidationReportLink()]
    return xcom_arg


def push_report_url(url: str | None, lea_code: str | None = None) -> None:
    """From inside the running task: the URL the button opens (``lea_code``: a listed LEA's run)."""
    if not url:
        return
    from airflow.sdk import get_current_context

    from calpads_airflow.run_notes import ui_url

    # The UI drops file:// links: the button opens the CALPADS page's copy of the report (same login).
    get_current_context()["ti"].xcom_push(key=REPORT_URL_XCOM, value=ui_url(url, lea_code) or str(url))
