"""calpads_deadline_watch with an LEA file, through `airflow dags test`: each LEA's coordinator (or, when its entry
names none, its team) gets one email about its own LEA, and nobody gets another LEA's."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from tests.dags.dagrun import project_env, run_dag

pytestmark = pytest.mark.dag

LEA_FILE = ROOT / "tests" / "fixtures" / "leas_three.yaml"
# Who must get which LEA's email, from tests/fixtures/leas_three.yaml: Birch names a coordinator, the others do not.
EXPECTED = {"5610001": {"data@alder.example"}, "5610002": {"coordinator@birch.example"},
            "5610003": {"office@cedar.example"}}


def test_each_leas_deadline_email_goes_to_its_own_people(airflow_home, tmp_path, smtp_server):
    env = project_env(airflow_home, sis_url="sqlite:////nonexistent/sis.db", store_url=f"sqlite:///{tmp_path}/s.db",
                      publish_root=tmp_path / "pub", work_root=tmp_path / "work", smtp_port=smtp_server.port,
                      emails="deployment-team@county.example")
    env["AIRFLOW__CALPADS__LEAS_FILE"] = str(LEA_FILE)
    watch = run_dag(env, "calpads_deadline_watch", "2026-07-06", {"as_of": "2026-07-06"})
    assert watch.state == "success", watch.output[-4000:]

    mails = [m for m in smtp_server.messages if "deadline watch" in (m["Subject"] or "")]
    got = {code: [m for m in mails if f", {code})" in m["Subject"]] for code in EXPECTED}
    assert all(len(found) == 1 for found in got.values()), {c: [m["Subject"] for m in f] for c, f in got.items()}
    for code, (mail,) in got.items():
        assert {a.strip() for a in mail["To"].split(",")} == EXPECTED[code], (code, mail["To"])
    assert len(mails) == 3    # none to the deployment's own Variable list: each LEA hears only of its own
