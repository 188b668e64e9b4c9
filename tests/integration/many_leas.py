"""Demo LEAs of one county office for the multi-LEA tests (docs/leas.md): their SIS databases, the LEA file that
lists them, and what each may publish.

Each LEA's SIS is a demo district generated with its own code (calpads.demo.generator ``lea_code``): its school
codes and local student ids are its own, so a record in another LEA's file or history is recognisable. What an
LEA owns is read back from its SIS here, never copied from a run's output.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

YEAR = "2025-2026"
STUDENTS = 300
DIRTY = 0.02          # a few records held back by the quality gate: each run sends its team a summary email
# 300 students give ~90 SPRG records, of which the planted errors are ~16: above the default error ceiling.
SETTINGS = {"AIRFLOW__CALPADS__ERROR_CEILING": "0.5"}
PS_CLIENT, PS_SECRET = "cid-many-leas", "secret-many-leas-do-not-log"


@dataclass(frozen=True)
class DemoLea:
    code: str
    name: str
    team: str                           # the one address of its team
    source: str = "sql"                 # "sql" or "powerschool_api"
    seed: int = 1
    files: tuple[str, ...] = ("SPRG",)

    @property
    def conn_id(self) -> str:
        return f"sis_db_{self.code}" if self.source == "sql" else f"sis_powerschool_{self.code}"

    @property
    def env_conn(self) -> str:
        """The environment variable that holds its SIS connection."""
        return f"AIRFLOW_CONN_{self.conn_id.upper()}"

    def dag_id(self, record_type: str) -> str:
        return f"calpads_{record_type.lower()}__{self.code}"

    def entry(self, **extra: Any) -> dict[str, Any]:
        """Its entry in the LEA file."""
        return {"code": self.code, "name": self.name, "sis": {"source": self.source, "conn_id": self.conn_id},
                "emails": {"team": [self.team]}, "files": list(self.files), **extra}


# As in tests/fixtures/leas_three.yaml: two on their own SQL SIS databases, one on a PowerSchool API server.
ALDER = DemoLea("5610001", "Alder Union Elementary", "data@alder.example", seed=11)
BIRCH = DemoLea("5610002", "Birch Joint Unified", "calpads@birch.example", seed=12)
CEDAR = DemoLea("5610003", "Cedar Charter Academy", "office@cedar.example", "powerschool_api", seed=13,
                files=("SPRG", "SENR"))
THREE = (ALDER, BIRCH, CEDAR)


def make_sis(path: Path, lea: DemoLea, students: int = STUDENTS) -> Path:
    """A demo SIS (SQLite) holding ``lea``'s district."""
    import sqlalchemy as sa

    from calpads.demo.generator import generate_district

    path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        generate_district(engine, students=students, seed=lea.seed, dirty=DIRTY, academic_year=YEAR,
                          lea_code=lea.code, log=lambda _m: None)
    finally:
        engine.dispose()
    return path


@dataclass(frozen=True)
class SisIds:
    """What identifies an LEA's records: its SIS's district number, school codes and local student ids."""
    lea: str
    schools: frozenset[str]
    students: frozenset[str]


def sis_ids(path: Path) -> SisIds:
    con = sqlite3.connect(path)
    try:
        lea = con.execute("SELECT VALUE FROM PREFS WHERE NAME = 'districtnumber' AND SCHOOLID = 0").fetchone()[0]
        schools = {r[0] for r in con.execute("SELECT ALTERNATE_SCHOOL_NUMBER FROM SCHOOLS")}
        students = {str(r[0]) for r in con.execute("SELECT STUDENT_NUMBER FROM STUDENTS")}
    finally:
        con.close()
    return SisIds(lea, frozenset(schools), frozenset(students))


def write_lea_file(path: Path, entries: Iterable[dict[str, Any]]) -> Path:
    import yaml

    document = {"defaults": {"timezone": "America/Los_Angeles", "schedule": "0 2 * * *"}, "leas": list(entries)}
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def powerschool_connection(url: str) -> dict[str, Any]:
    """The Airflow connection (JSON) of a tests/integration/vendor_servers PowerSchool server."""
    return {"conn_type": "calpads_powerschool", "host": url, "login": PS_CLIENT, "password": PS_SECRET,
            "extra": {"page_size": 500}}


def published_records(folder: Path, record_type: str) -> list[dict[str, str]]:
    """The records of a published run folder's caret files (the full file and its splits), by layout column."""
    from calpads.layouts import load_layout

    columns = load_layout(record_type).columns
    records = []
    for file in sorted(folder.glob("*.txt")):
        for line in file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                records.append(dict(zip(columns, line.split("^"), strict=False)))
    return records


def assert_only_own_records(records: list[dict[str, str]], own: SisIds, others: Iterable[SisIds],
                            label: str) -> None:
    """Every record is ``own``'s (its LEA, schools and students) and none is another LEA's."""
    assert records, f"{label}: no records"
    leas = {r["reporting_lea"] for r in records}
    schools = {r["school_of_attendance"] for r in records} - {""}
    students = {r["local_student_id"] for r in records}
    assert leas == {own.lea}, f"{label}: records of Reporting LEA {sorted(leas - {own.lea})}"
    assert schools and schools <= own.schools, f"{label}: schools not its own: {sorted(schools - own.schools)[:5]}"
    assert students <= own.students, f"{label}: students not its own: {sorted(students - own.students)[:5]}"
    for other in others:
        assert not schools & other.schools, f"{label}: LEA {other.lea}'s schools {sorted(schools & other.schools)}"
        assert not students & other.students, f"{label}: LEA {other.lea}'s students"
