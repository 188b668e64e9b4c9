"""The one notifier every CALPADS DAG shares: failure alerts to the integration team."""

from __future__ import annotations

import logging

from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)

RECIPIENTS_VARIABLE = "integration_team_emails"


def recipients() -> list[str]:
    from airflow.sdk import Variable

    raw = Variable.get(RECIPIENTS_VARIABLE, default="")
    return [a.strip() for a in raw.split(",") if a.strip()]


def send(subject: str, html_content: str, conn_id: str = "smtp_default") -> bool:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    to = recipients()
    if not to:
        log.warning("No alert sent: the Variable %s is empty", RECIPIENTS_VARIABLE)
        return False
    with SmtpHook(smtp_conn_id=conn_id) as hook:
        hook.send_email_smtp(to=to, subject=subject, html_content=html_content,
                             from_email=hook.from_email or "calpads-pipeline@localhost")
    log.info("Alert sent to %d recipient(s): %s", len(to), subject)
    return True


class CalpadsFailureNotifier(BaseNotifier):
    """Task failure -> email: what failed, why (in our words), what to do, the log link."""

    def __init__(self, smtp_conn_id: str = "smtp_default"):
        super().__init__()
        self.smtp_conn_id = smtp_conn_id

    def notify(self, context) -> None:
        from calpads.alerts.messages import failure_email

        ti = context.get("ti") or context.get("task_instance")
        dag_run = context.get("dag_run")
        subject, body = failure_email(
            dag_id=getattr(ti, "dag_id", "?"), run_id=getattr(dag_run, "run_id", getattr(ti, "run_id", "?")),
            task_id=getattr(ti, "task_id", "?"), try_number=getattr(ti, "try_number", 0),
            exception=context.get("exception"), log_url=getattr(ti, "log_url", None),
        )
        try:
            send(subject, body, self.smtp_conn_id)
        except Exception as exc:  # an alert must never hide the original failure
            log.error("Could not send the failure alert: %s", type(exc).__name__)
