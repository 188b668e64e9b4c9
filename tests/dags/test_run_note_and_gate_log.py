"""A calpads_sprg run through `airflow dags test` beside a real api-server (simple auth manager) on the same
metadata database, with the mail server down: the run is green (its files are ready), its note says what it did
and that only the summary email failed, the report button and the note open the report through the CALPADS
page, and the quality gate's log opens with its summary (Great Expectations quiet)."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
import requests

from tests.conftest import demo_sis
from tests.dags.apiserver import api_server, api_server_env
from tests.dags.dagrun import project_env, run_dag
from tests.integration.topology import free_port

pytestmark = pytest.mark.dag
YEAR = "2025-2026"
PASSWORD = "note-writer-pw"


@pytest.fixture(scope="module")
def district(tmp_path_factory) -> Path:
    return demo_sis(tmp_path_factory.mktemp("district") / "sis.db", students=300, seed=21, dirty=0.02,
                    academic_year=YEAR)


def test_green_run_with_failed_email_has_a_note_a_report_link_and_a_short_gate_log(airflow_home, district,
                                                                                  tmp_path):
    pub = tmp_path / "pub"
    env = project_env(airflow_home, sis_url=f"sqlite:///{district}", store_url=f"sqlite:///{tmp_path}/store.db",
                      publish_root=pub, work_root=tmp_path / "work", smtp_port=free_port())  # nobody listens there
    env, port = api_server_env(env, tmp_path, PASSWORD)
    env["AIRFLOW__CALPADS__ERROR_CEILING"] = "0.5"          # held-back records, and the files still go out
    env["AIRFLOW__CALPADS__RETRY_DELAY_SECONDS"] = "1"      # the summary email's one retry
    with api_server(env, port, PASSWORD, tmp_path / "api-server.log") as api:
        base = api.url
        result = run_dag(env, "calpads_sprg", "2026-04-01", {"academic_year": YEAR})

        # green although the email failed: the files are ready
        assert result.task_states["send_run_summary"] == "failed", result.output[-3000:]
        assert result.state == "success", result.output[-4000:]
        folder = pub / YEAR / "SPRG" / result.run_id
        manifest = json.loads((folder / "manifest.json").read_text())
        held = manifest["validation"]["records_held_back"]
        records = manifest["counts"]["records_in_full_file"]
        assert held > 0

        # the run note, as the api-server stored it
        con = sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")
        try:
            (note,) = con.execute("SELECT n.content FROM dag_run_note n JOIN dag_run r ON r.id = n.dag_run_id "
                                  "WHERE r.dag_id = 'calpads_sprg' AND r.run_id = ?", (result.run_id,)).fetchone()
        finally:
            con.close()
        rules = sum(1 for r in manifest["validation"]["rules"].values() if r["severity"] == "error")
        assert note.startswith(f"READY: {records} records in _AU"), note
        assert f"{manifest['counts']['deletes']} deletes - {held} held back by {rules} rules" in note, note
        assert "files ready; summary email failed" in note and note.endswith(f"(SPRG {YEAR}, submission)")
        link = re.search(r"\[report\]\((http[^)]+)\)", note).group(1)
        assert link.startswith(f"{base}/calpads/files/{YEAR}/SPRG/") and link.endswith("/report/index.html")

        # the report button (extra link) and the note's link open the report through the CALPADS page
        auth = {"Authorization": f"Bearer {api.token()}"}
        links = requests.get(f"{base}/api/v2/dags/calpads_sprg/dagRuns/{result.run_id}/taskInstances/"
                             "quality_gate/links", headers=auth, timeout=10).json()
        assert links["extra_links"]["Validation report"] == link
        assert requests.get(link, timeout=10).status_code == 401
        report = requests.get(link, headers=auth, timeout=10)
        assert report.status_code == 200 and "SPRG validation report" in report.text
        page = requests.get(f"{base}/calpads/", headers=auth, timeout=10).text
        assert f"READY, {held} held back" in page and "files ready; summary email failed" in page

        # the gate's log: its summary within the first 20 lines of the task, no Great Expectations chatter
        lines = result.output.splitlines()
        start = next(i for i, ln in enumerate(lines) if "running task <TaskInstance: calpads_sprg.quality_gate" in ln)
        first = "\n".join(lines[start:start + 20])
        assert f"Quality gate (SPRG {YEAR}, submission): {manifest['validation']['records_checked']} records " \
               f"checked" in first, first
        assert "Held back by rule" in first and f"Report: {link}" in first, first
        assert not [ln for ln in lines if "[info" in ln and "[great_expectations" in ln]
