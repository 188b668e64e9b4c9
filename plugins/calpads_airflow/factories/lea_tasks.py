"""What the task classes of the afterschool and health DAGs share: their time zone, DAG id and LEA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from calpads.leas import LeaConfig
from calpads_airflow import runtime


@dataclass(frozen=True)
class LeaScopedTasks:
    """``lea`` None: the single LEA, with today's connections and Variables; a listed LEA: its own SIS, store,
    publish folder and recipients (calpads.leas)."""

    tz: Any
    dag_id: str
    lea: LeaConfig | None = None

    @property
    def lea_code(self) -> str | None:
        return self.lea.code if self.lea is not None else None

    def store(self) -> Any:
        return runtime.engine(runtime.store_conn_id(self.lea))
