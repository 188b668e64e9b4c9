"""The one notifier every CALPADS DAG shares: failure alerts to the integration team."""

from __future__ import annotations

import logging

from airflow.sdk import BaseNotifier

from calpads.alerts.roles import ROLE_VARIABLES, addresses_for
from calpads.alerts.roles import TEAM_VARIABLE as RECIPIENTS_VARIABLE

log = logging.getLogger(__name__)


def recipients(roles: tuple[str, ...] = (), lea_code: str | None = None) -> list[str]:
    """The addresses for these roles (no roles: the integration team), each role falling back to the team list.
    A listed LEA's (``lea_code``): its own entry's lists only, never the Variables (calpads.leas)."""
    from airflow.sdk import Variable

    if lea_code is not None:
        from calpads_airflow.leas import lea_for

        return list(lea_for(lea_code).recipients(roles))

    def split(raw: str) -> list[str]:
        return [a.strip() for a in (raw or "").split(",") if a.strip()]

    return addresses_for(roles, split(Variable.get(RECIPIENTS_VARIABLE, default="")),
                         lambda role: split(Variable.get(ROLE_VARIABLES[role], default="")))


def send(subject: str, html_content: str, conn_id: str = "smtp_default", roles: tuple[str, ...] = (),
         lea_code: str | None = None) -> bool:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    to = recipients(roles, lea_code)
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

    def __init__(self, smtp_conn_id: str = "smtp_default", lea_code: str | None = None):
        super().__init__()
        self.smtp_conn_id = smtp_conn_id
        self.lea_code = lea_code   # a listed LEA's DAG: its own team (calpads.leas)

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
            send(subject, body, self.smtp_conn_id, lea_code=self.lea_code)
        except Exception as exc:  # an alert must never hide the original failure
            log.error("Could not send the failure alert: %s", type(exc).__name__)
