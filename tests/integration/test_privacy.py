"""No student's data leaks: a real `airflow dags test` run of calpads_sprg on a generated district,
then everything a person or another system can see besides the protected files is scanned for the
district's names, birth dates and SSIDs: the command output, the task log files, the metadata DB
(XCom, rendered templates, task instances, the run and its conf, the audit log: what the UI's pages
and REST endpoints for the run read), the alert emails and the validation report the email links to.
Plus: file modes of everything published, SQL injection through the schools param stopped before the
SIS is touched, and credentials only in connections.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT, demo_sis
from tests.dags.dagrun import project_env, run_dag

YEAR = "2025-2026"
PASSWORD = "Tr0ub4dor-calpads-test"   # trust auth ignores it; it must still never be shown


@pytest.fixture(scope="module")
def district(tmp_path_factory) -> Path:
    return demo_sis(tmp_path_factory.mktemp("privacy") / "sis.db", students=400, seed=7, dirty=0.02,
                    academic_year=YEAR)


def student_patterns(sis: Path) -> re.Pattern[str]:
    """First-Last pairs, last names of 7+ letters, birth dates (YYYY-MM-DD and YYYYMMDD), SSIDs."""
    con = sqlite3.connect(sis)
    try:
        rows = con.execute("SELECT s.FIRST_NAME, s.LAST_NAME, x.LEGALFIRSTNAME, x.LEGALLASTNAME, s.DOB, "
                           "s.STATE_STUDENTNUMBER FROM STUDENTS s LEFT JOIN S_CA_STU_X x "
                           "ON x.STUDENTSDCID = s.DCID").fetchall()
    finally:
        con.close()
    words: set[str] = set()
    for first, last, lfirst, llast, dob, ssid in rows:
        for f, la in ((first, last), (lfirst or first, llast or last)):
            words.add(f"{f} {la}")
            if la and len(la) >= 7 and la.isalpha():
                words.add(la)
        if dob:
            words.update({dob, dob.replace("-", "")})
        if ssid:
            words.add(ssid)
    return re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
                      + r")(?![\w-])")


def leaks(pattern: re.Pattern[str], where: str, text: str) -> list[str]:
    return [f"{where}: ...{text[max(0, m.start() - 60):m.end() + 60]!r}..." for m in pattern.finditer(text)][:5]


def metadata_texts(home: Path, dag_id: str, run_id: str) -> dict[str, str]:
    """The metadata rows of one run the UI and the REST API show: every column as text."""
    con = sqlite3.connect(home / "airflow.db")
    out: dict[str, str] = {}
    try:
        for table in ("xcom", "rendered_task_instance_fields", "task_instance", "dag_run", "task_instance_history"):
            cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
            if "run_id" not in cols:
                continue
            rows = con.execute(f"SELECT * FROM {table} WHERE dag_id = ? AND run_id = ?",  # noqa: S608
                               (dag_id, run_id)).fetchall()
            out[table] = "\n".join(
                " | ".join(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row)
                for row in rows)
        out["log"] = "\n".join(str(r) for r in con.execute("SELECT * FROM log WHERE dag_id = ?", (dag_id,)))
    finally:
        con.close()
    return out


@pytest.mark.dag
def test_no_name_birth_date_ssid_or_password_outside_the_protected_files(airflow_home, district, tmp_path,
                                                                        smtp_server, pg_database):
    pattern = student_patterns(district)
    store_url = pg_database.replace("postgresql+psycopg2://postgres@", f"postgres://postgres:{PASSWORD}@")
    pub = tmp_path / "pub"
    env = project_env(airflow_home, sis_url=f"sqlite:///{district}", store_url=store_url, publish_root=pub,
                      work_root=tmp_path / "work", smtp_port=smtp_server.port)
    env["AIRFLOW__CALPADS__ERROR_CEILING"] = "0.5"   # a small dirty district: publish, hold the planted ones back
    result = run_dag(env, "calpads_sprg", "2026-04-15", {"academic_year": YEAR, "save_history": True})
    errors = [ln for ln in result.output.splitlines() if "error" in ln.lower() or "Error" in ln][-15:]
    assert result.state == "success", (result.task_states, "\n".join(errors))
    emails = smtp_server.texts()
    assert emails, "a dirty district's run sends a summary email"

    seen: dict[str, str] = {"command output": result.output, "emails": "\n".join(emails)}
    # `airflow dags test` runs the tasks in-process: their logs are the command output (above); any log
    # file under the home's logs/ (dag processor, a scheduler's task logs) is scanned too.
    logs = [p for p in (airflow_home / "logs").rglob("*") if p.is_file()]
    seen.update({f"log {p.relative_to(airflow_home)}": p.read_text(errors="replace") for p in logs})
    seen.update({f"metadata {k}": v for k, v in metadata_texts(airflow_home, "calpads_sprg", result.run_id).items()})
    folder = pub / YEAR / "SPRG" / result.run_id
    # The report is linked from the email and the UI: it names records by local ids only.
    for p in (folder / "report").rglob("*"):
        if p.is_file() and p.suffix in (".html", ".csv", ".json"):
            seen[f"report {p.relative_to(folder)}"] = p.read_text(errors="replace")
    assert "xcom" in {k.split()[-1] for k in seen} and seen["metadata xcom"], "no XCom rows read"
    # XCom holds small references only (counts, ids, paths), never records: every value stays small.
    con = sqlite3.connect(airflow_home / "airflow.db")
    try:
        sizes = {key: len(str(value)) for key, value in con.execute(
            "SELECT task_id || '.' || key, value FROM xcom WHERE dag_id = ? AND run_id = ?",
            ("calpads_sprg", result.run_id))}
    finally:
        con.close()
    assert sizes and max(sizes.values()) < 4096, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]

    found = [hit for where, text in seen.items() for hit in leaks(pattern, where, text)]
    assert not found, "student data outside the protected files:\n" + "\n".join(found[:20])
    assert not [where for where, text in seen.items() if PASSWORD in text], "the store password was shown"

    # Everything published is owner/group only: files 0640 (or 0600), folders 0750 (or 0700).
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.rglob("*")]}
    bad = {str(p): oct(m) for p, m in modes.items() if m not in ((0o750, 0o700) if p.is_dir() else (0o640, 0o600))}
    assert not bad, bad
    assert {p.name for p in folder.glob("*.txt")}, "nothing was published"


@pytest.mark.dag
def test_injection_through_the_schools_param_is_refused_before_any_task_or_sis_query(airflow_home, tmp_path,
                                                                                     smtp_server):
    """Param validation (the schools items must be 7 digits) refuses the run when it is created: no task
    runs, so no SQL is built and the SIS is never opened. (Through the UI or the REST API the same
    validation answers the trigger with an error.)"""
    from tests.integration.reliability import make_sis

    sis = tmp_path / "sis.db"
    make_sis(sa.create_engine(f"sqlite:///{sis}"))
    before = sis.stat().st_mtime_ns
    env = project_env(airflow_home, sis_url=f"sqlite:///{sis}", store_url=f"sqlite:///{tmp_path}/store.db",
                      publish_root=tmp_path / "pub", work_root=tmp_path / "work", smtp_port=smtp_server.port)
    result = run_dag(env, "calpads_sprg", "2026-04-16",
                     {"academic_year": YEAR, "schools": ["0000001' OR 1=1 --"]})
    assert result.returncode != 0
    assert "ParamValidationError" in result.output and "schools" in result.output, result.output[-2000:]
    assert result.state in (None, "failed") and not [s for s in result.task_states.values() if s == "success"]
    assert "extract_records" not in result.task_states or result.task_states["extract_records"] != "success"
    assert not (tmp_path / "work").exists(), "a task ran"
    assert not (tmp_path / "store.db").exists(), "the staging gate's store was opened: the pull ran"
    assert sis.stat().st_mtime_ns == before
    assert not any((tmp_path / "pub").iterdir())


SECRET = re.compile(
    r"""(?ix)
    (password|passwd|secret|token|api[_-]?key)["']?\s*[:=]\s*["'][^"'{}$<\s]{4,}["']   # a literal assigned
    | BEGIN\ [A-Z ]*PRIVATE\ KEY | AKIA[0-9A-Z]{16}                                      # keys
    | ://[^/:@\s"']+:[^@/\s{}$"']+@                                                      # user:password@ in a URL
    """)
# Connection-form labels ("password": "Client secret") and documented placeholders (user:PASSWORD@host).
ALLOWED = re.compile(r'"relabeling"|:(PASSWORD|CHANGEME|\*+)@')


def test_no_credential_in_the_repository_outside_connections_and_test_fixtures():
    """Credentials live in Airflow connections (env/secrets backend), never in code or docs. The tests'
    fake vendor servers use made-up keys: tests/ is left out."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    hits = []
    for rel in files:
        if rel.startswith(("tests/", "bench/results/")) or not (ROOT / rel).is_file():
            continue
        try:
            text = (ROOT / rel).read_text()
        except (UnicodeDecodeError, OSError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if SECRET.search(line) and not ALLOWED.search(line):
                hits.append(f"{rel}:{n}: {line.strip()[:120]}")
    assert not hits, "\n".join(hits)


def test_airflow_masks_the_connection_password_in_task_logs_is_configured():
    """The secrets masker (hide_sensitive_var_conn_fields) is on: Airflow's default; nothing turns it off."""
    env_files = [ROOT / "scripts" / "env.sh", ROOT / ".env.example", ROOT / "docker-compose.yaml"]
    for p in env_files:
        if p.exists():
            assert "HIDE_SENSITIVE_VAR_CONN_FIELDS=False" not in p.read_text().upper().replace(" ", ""), p
    assert os.environ.get("AIRFLOW__CORE__HIDE_SENSITIVE_VAR_CONN_FIELDS", "true").lower() != "false"
