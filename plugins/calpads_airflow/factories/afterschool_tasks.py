"""The tasks of afterschool_sync: each a method calling one stage of calpads.afterschool.stages.

Each stage's outcome is also kept in the run's work folder (state.json) for the summary email; XCom gets
counts only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException

from calpads_airflow import runtime
from calpads_airflow.factories.lea_tasks import LeaScopedTasks

DAG_ID = "afterschool_sync"


@dataclass(frozen=True)
class AfterschoolTasks(LeaScopedTasks):
    """What every task of one afterschool_sync DAG shares: its time zone, DAG id and LEA (None: the single LEA and
    today's connections and Variables; a listed LEA: its own SIS, store, export, write mode, publish folder and
    recipients, calpads.leas)."""

    dag_id: str = DAG_ID

    def sis_reader(self, run: Any) -> Any:
        try:
            return runtime.sis_reader(run.work_dir, self.lea)
        except runtime.AfterschoolSisUnsupported as exc:   # the LEA file, not the SIS: a retry cannot help
            raise AirflowFailException(str(exc)) from None

    # -- helpers ---------------------------------------------------------------------------------
    def run_obj(self, cfg: dict[str, Any]) -> Any:
        from calpads.afterschool.stages import AfterschoolRun

        run_id = runtime.current_run_id()
        return AfterschoolRun(dag_id=self.dag_id, run_id=run_id, academic_year=cfg["academic_year"],
                              run_date=runtime.run_date(self.tz), work_dir=runtime.work_dir(self.dag_id, run_id),
                              publish_root=runtime.publish_root(self.lea), lea_code=self.lea_code)

    @staticmethod
    def remember(run: Any, key: str, value: Any) -> None:
        from calpads.afterschool.reports import write_private

        path = run.work_dir / "state.json"
        state = json.loads(path.read_text()) if path.exists() else {}
        state[key] = value
        write_private(path, json.dumps(state, default=str, indent=2))

    # -- the tasks -------------------------------------------------------------------------------
    def check_params(self) -> dict[str, Any]:
        from calpads.run_scope import ScopeError, academic_year_bounds

        params = dict(get_current_context()["params"])
        try:
            academic_year_bounds(params["academic_year"])
            if params["write_mode"] == "setting":
                params["write_mode"] = runtime.scheduled_write_mode(self.lea)
        except (ScopeError, ValueError) as exc:
            raise AirflowFailException(f"Run parameters rejected: {exc}") from None
        return {k: params[k] for k in ("academic_year", "write_mode", "source", "chronic_threshold")}

    def import_attendance(self, cfg: dict[str, Any]) -> dict[str, Any]:
        from calpads.afterschool.ingest import MalformedExport
        from calpads.afterschool.stages import import_export
        from calpads.failures import LeaMismatch

        run = self.run_obj(cfg)
        try:
            data, name, ctype = runtime.afterschool_export(cfg["source"], lea=self.lea)
            registrations = runtime.afterschool_export(cfg["source"], "registrations", lea=self.lea)
            out = import_export(run, self.sis_reader(run), self.store(), data,
                                name, ctype, registrations=registrations)
        except LeaMismatch as exc:   # the LEA's SIS connection reads another LEA: fix the configuration
            self.remember(run, "errors", {"import": str(exc)})
            raise AirflowFailException(str(exc)) from None
        except (MalformedExport, FileNotFoundError, PermissionError) as exc:
            self.remember(run, "errors", {"import": str(exc)})
            raise AirflowFailException(f"Afterschool export rejected: {exc}") from None
        self.remember(run, "import", out)
        return {k: v for k, v in out.items() if k != "rules"}

    def write_back(self, cfg: dict[str, Any], imported: dict[str, Any]) -> dict[str, Any]:
        from calpads.afterschool.stages import writeback_stage
        from calpads.afterschool.store import AfterschoolNotImported
        from calpads.afterschool.writeback import WriteBackError, WriteRejected
        from calpads.failures import LeaMismatch

        run = self.run_obj(cfg)
        try:
            out = writeback_stage(run, self.sis_reader(run), runtime.writeback_target(self.lea),
                                  self.store(), cfg["write_mode"],
                                  ceiling=float(runtime.conf("afterschool_error_ceiling", "0.05")))
        except (WriteRejected, WriteBackError, AfterschoolNotImported, LeaMismatch) as exc:
            self.remember(run, "errors", {"write_back": str(exc)})
            raise AirflowFailException(str(exc)) from None
        self.remember(run, "writeback", out)
        return {k: v for k, v in out.items() if k != "rules"}

    def reconcile(self, cfg: dict[str, Any]) -> dict[str, Any]:
        from calpads.afterschool.stages import reconcile_stage
        from calpads.afterschool.store import AfterschoolNotImported
        from calpads.failures import LeaMismatch

        run = self.run_obj(cfg)
        try:
            out = reconcile_stage(run, self.sis_reader(run), self.store())
        except (AfterschoolNotImported, LeaMismatch) as exc:
            raise AirflowFailException(str(exc)) from None
        self.remember(run, "reconcile", out)
        print(f"Reconciliation report: {out['report']}")
        return {k: v for k, v in out.items() if k != "kinds"} | {"kinds": {k: v["days"] for k, v in
                                                                        out["kinds"].items()}}

    def attendance_recovery(self, cfg: dict[str, Any]) -> dict[str, Any]:
        from calpads.afterschool.stages import recovery_stage
        from calpads.afterschool.store import AfterschoolNotImported
        from calpads.failures import LeaMismatch

        run = self.run_obj(cfg)
        try:
            out = recovery_stage(run, self.sis_reader(run), self.store(),
                                 threshold=float(cfg["chronic_threshold"]))
        except (AfterschoolNotImported, LeaMismatch) as exc:
            raise AirflowFailException(str(exc)) from None
        self.remember(run, "recovery", out)
        return out

    def email_summary(self, cfg: dict[str, Any]) -> dict[str, Any]:
        from calpads.afterschool.stages import summary_email, summary_roles
        from calpads_airflow.notifiers import send

        run = self.run_obj(cfg)
        path = run.work_dir / "state.json"
        state = json.loads(path.read_text()) if path.exists() else {}
        subject, body = summary_email(run, state)
        if self.lea is not None and self.lea.listed:   # a person on several LEAs' lists sees which one
            subject = f"{subject} ({self.lea.name}, {self.lea.code})"
        roles = summary_roles(state)
        return {"sent": send(subject, body, roles=roles, lea_code=self.lea_code), "roles": list(roles)}

    @staticmethod
    def run_outcome() -> None:
        raise AirflowFailException("A task of this run failed: see the failed task's log and alert email.")
