"""Real `airflow dags test` runs of calpads_sprg on generated districts, with a local SMTP server:

- a dirty district: the summary email has the per-rule counts of the planted violations and the report
  link (also the quality_gate task's "Validation report" extra link), and neither the email nor the task
  logs name a student (names, birth dates, SSIDs read back from the generated SIS);
- the next night the SIS pull has lost 40% of its students: the staging gate fails the run before
  anything is built, and the email says so in plain words;
- a district where far more than 5% of the records fail: the run fails, nothing is published, the
  report is still written, and the emails say that nothing was published.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
import sqlalchemy as sa

from tests.dags.dagrun import project_env, run_dag

pytestmark = pytest.mark.dag
YEAR = "2025-2026"
LINK_XCOM = "_link_ValidationReportLink"
UI = "http://localhost:8080"      # the UI's address when [api] base_url is not set


def generate(path: Path, students: int, seed: int, dirty: float) -> Path:
    from calpads.demo.generator import generate_district

    generate_district(sa.create_engine(f"sqlite:///{path}"), students=students, seed=seed, dirty=dirty,
                      academic_year=YEAR, log=lambda m: None)
    return path


def student_pii(sis: Path) -> dict[str, set[str]]:
    """Every name ("First Last"), birth date (YYYY-MM-DD and YYYYMMDD) and SSID of the generated SIS."""
    con = sqlite3.connect(sis)
    try:
        names = {f"{f} {la}" for f, la in con.execute("SELECT FIRST_NAME, LAST_NAME FROM STUDENTS")}
        names |= {f"{f} {la}" for f, la in con.execute(
            "SELECT LEGALFIRSTNAME, LEGALLASTNAME FROM S_CA_STU_X WHERE LEGALFIRSTNAME IS NOT NULL "
            "AND LEGALLASTNAME IS NOT NULL")}
        dobs = {str(d)[:10] for (d,) in con.execute("SELECT DOB FROM STUDENTS WHERE DOB IS NOT NULL")}
        ssids = {str(s) for (s,) in con.execute("SELECT STATE_STUDENTNUMBER FROM STUDENTS "
                                                 "WHERE STATE_STUDENTNUMBER IS NOT NULL AND STATE_STUDENTNUMBER != ''")}
    finally:
        con.close()
    return {"name": names, "birth date": dobs | {d.replace("-", "") for d in dobs}, "ssid": ssids}


def leaked(text: str, pii: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(kind, value) of every PII value in text; dates and SSIDs only as whole tokens (not inside longer numbers)."""
    out = [("name", n) for n in pii["name"] if n in text]
    tokens = set(re.findall(r"(?<![0-9])[0-9]{4}-[0-9]{2}-[0-9]{2}(?![0-9])|(?<![0-9])[0-9]{8,10}(?![0-9])", text))
    out += [(kind, v) for kind in ("birth date", "ssid") for v in sorted(pii[kind] & tokens)]
    return out


def xcom_value(home: Path, run_id: str, task_id: str, key: str):
    con = sqlite3.connect(home / "airflow.db")
    try:
        row = con.execute("SELECT value FROM xcom WHERE dag_id = 'calpads_sprg' AND run_id = ? AND task_id = ? "
                          "AND key = ?", (run_id, task_id, key)).fetchone()
    finally:
        con.close()
    return json.loads(row[0]) if row else None


def api_extra_link(run_id: str) -> str | None:
    """The button's URL as the API server computes it: the stored serialized DAG + the metadata DB."""
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        dag = SerializedDagModel.get_dag("calpads_sprg", session=session)
        ti = session.scalars(sa.select(TaskInstance).where(
            TaskInstance.dag_id == "calpads_sprg", TaskInstance.run_id == run_id,
            TaskInstance.task_id == "quality_gate")).one()
        return dag.get_task("quality_gate").get_extra_links(ti, "Validation report")


def expected_rule_counts(sis: Path, work_root: Path, run_id: str) -> Counter:
    """The generator's ground truth (DEMO_PLANTED_VIOLATIONS) for the records this run extracted."""
    truth = pd.read_sql("SELECT STUDENTID, PROGRAM_ID, SERVICECODE, RULE_ID FROM DEMO_PLANTED_VIOLATIONS",
                        sa.create_engine(f"sqlite:///{sis}"))
    rid = truth["STUDENTID"].astype(str) + "." + truth["PROGRAM_ID"].astype(str)
    svc = truth["SERVICECODE"].fillna("")
    truth["local_record_id"] = rid.where(svc == "", rid + "." + svc)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)
    extracted = set(pd.read_parquet(work_root / "calpads_sprg" / safe / "records.parquet")["local_record_id"])
    return Counter(truth.loc[truth["local_record_id"].isin(extracted), "RULE_ID"])


def email_rule_counts(text: str) -> Counter:
    rows = re.findall(r"<tr><td>([A-Za-z0-9._\-]+)</td><td>(?:error|warning)</td><td>([0-9]+)</td>", text)
    return Counter({rule: int(n) for rule, n in rows})


def test_dirty_district_email_has_counts_and_link_and_no_student_data_then_a_shrunk_pull_stops(
        airflow_home, tmp_path, smtp_server):
    sis = generate(tmp_path / "sis.db", students=1200, seed=5, dirty=0.02)
    pii = student_pii(sis)
    assert len(pii["name"]) > 1000 and len(pii["ssid"]) > 1000
    pub, work = tmp_path / "pub", tmp_path / "work"
    env = project_env(airflow_home, sis_url=f"sqlite:///{sis}", store_url=f"sqlite:///{tmp_path}/store.db",
                      publish_root=pub, work_root=work, smtp_port=smtp_server.port)
    env["AIRFLOW__CALPADS__ERROR_CEILING"] = "0.5"     # 2% planted violations hit ~6% of the records

    first = run_dag(env, "calpads_sprg", "2026-04-20", {"academic_year": YEAR})
    assert first.state == "success", first.output[-4000:]
    texts = smtp_server.texts()
    assert len(texts) == 1, texts      # the summary email only: no task failed
    email = texts[0]

    # per-rule counts: the planted violations of the extracted records, rule by rule
    expected = expected_rule_counts(sis, work, first.run_id)
    assert sum(expected.values()) >= 5
    assert email_rule_counts(email) == expected
    held = int(re.search(r"(\d+) held back", email).group(1))
    assert held > 0

    # the report link: in the email, behind the quality_gate task's extra link, and a real file
    report = f"file://{pub}/{YEAR}/SPRG/{first.run_id}/report/index.html"
    assert f'<a href="{report}">' in email
    # the button opens the CALPADS page's copy (the UI drops file:// links); [api] base_url is unset here
    ui_report = f"{UI}/calpads/files/{YEAR}/SPRG/{quote(first.run_id, safe='')}/report/index.html"
    assert xcom_value(airflow_home, first.run_id, "quality_gate", LINK_XCOM) == ui_report
    assert api_extra_link(first.run_id) == ui_report
    assert Path(report.removeprefix("file://")).is_file()

    # no student named in the email or in any task log
    assert leaked(email, pii) == []
    assert leaked(first.output, pii) == []
    assert "Staging gate: pulled" in first.output     # the logs were captured (not an empty scan)

    # Next night: 40% of the students vanish from the SIS export (with their programs and services).
    con = sqlite3.connect(sis)
    staged_ids = [i for (i,) in con.execute("SELECT ID FROM STUDENTS")]   # every student is staged
    before = json.loads((work / "calpads_sprg" / _safe(first.run_id) / "state.json").read_text())[
        "staging"]["counts"]["students"]
    assert before == len(staged_ids)
    gone = "(SELECT DCID FROM STUDENTS WHERE ID % 5 IN (0, 1))"
    with con:
        con.execute(f"DELETE FROM S_CA_STU_CALPADSPROGRAMS_C WHERE STUDENTSDCID IN {gone}")  # noqa: S608
        con.execute(f"DELETE FROM S_CA_CALPADS_STUDENTSERVICES_C WHERE STUDENTSDCID IN {gone}")  # noqa: S608
        con.execute("DELETE FROM STUDENTS WHERE ID % 5 IN (0, 1)")
    con.close()
    after = sum(1 for i in staged_ids if i % 5 not in (0, 1))
    drop = 1 - after / before
    assert drop > 0.2

    second = run_dag(env, "calpads_sprg", "2026-04-21", {"academic_year": YEAR})
    assert second.state == "failed"
    assert second.task_states["extract_records"] == "failed"
    assert second.task_states.get("quality_gate") in ("upstream_failed", None)
    assert not (pub / YEAR / "SPRG" / second.run_id).exists()        # nothing built, nothing published
    failure = next(t for t in smtp_server.texts() if "extract_records" in t and "FAILED" in t)
    message = (f"Tonight&#x27;s SIS pull has {after:,} students, {drop:.0%} fewer than last night&#x27;s "
               f"{before:,}: the pull may be incomplete. Check the SIS export, then clear the task.")
    assert message in failure, failure
    assert leaked(failure, pii) == [] and leaked(second.output, pii) == []


def _safe(run_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)


def test_too_many_errors_fail_the_run_publish_nothing_and_still_write_the_report(airflow_home, tmp_path,
                                                                                 smtp_server):
    sis = generate(tmp_path / "sis.db", students=300, seed=9, dirty=0.3)
    pii = student_pii(sis)
    pub = tmp_path / "pub"
    env = project_env(airflow_home, sis_url=f"sqlite:///{sis}", store_url=f"sqlite:///{tmp_path}/store.db",
                      publish_root=pub, work_root=tmp_path / "work", smtp_port=smtp_server.port)
    result = run_dag(env, "calpads_sprg", "2026-04-22", {"academic_year": YEAR})
    assert result.state == "failed", result.output[-4000:]
    assert result.task_states["quality_gate"] == "failed"
    assert result.task_states.get("publish_files") in ("upstream_failed", None)

    folder = pub / YEAR / "SPRG" / result.run_id
    assert not list(pub.rglob("*.txt")) and not (folder / "manifest.json").exists()
    index = (folder / "report" / "index.html").read_text()
    assert "TOO MANY ERRORS" in index and "Nothing from this run was published." in index
    assert (folder / "report" / "findings.csv").is_file()
    report = f"file://{folder}/report/index.html"
    ui_report = f"{UI}/calpads/files/{YEAR}/SPRG/{quote(result.run_id, safe='')}/report/index.html"
    assert xcom_value(airflow_home, result.run_id, "quality_gate", LINK_XCOM) == ui_report

    texts = smtp_server.texts()
    failure = next(t for t in texts if "quality_gate" in t and "FAILED" in t)
    assert "nothing was published" in failure and report in failure
    summary = next(t for t in texts if "held back" in t and "FAILED" not in t)
    assert "nothing from this run was published" in summary and report in summary
    for text in (*texts, result.output):
        assert leaked(text, pii) == []
