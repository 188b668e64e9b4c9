"""Three LEAs on the CeleryExecutor topology (tests/integration/topology.py), with an LEA file (docs/leas.md).

airflow-init creates one pool per LEA SIS connection from the LEA file; the dag-processor builds each LEA's file
DAGs; the three SPRG runs, triggered at once through the REST API, run at the same time on Celery: Alder's and
Birch's (SQL SIS databases) on the default worker, Cedar's (PowerSchool API server; ``queue`` in its entry) on a
second worker that listens on Cedar's queue only. Each publishes only its own students under its own folder, and
its summary email goes to its own team.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.integration.many_leas import (
    ALDER,
    BIRCH,
    CEDAR,
    PS_CLIENT,
    PS_SECRET,
    SETTINGS,
    THREE,
    YEAR,
    assert_only_own_records,
    make_sis,
    powerschool_connection,
    published_records,
    sis_ids,
    write_lea_file,
)
from tests.integration.topology import free_port, start_topology, wait_for

pytestmark = [pytest.mark.topology, pytest.mark.postgres]

CONF = {"academic_year": YEAR}
LOGICAL_DATE = "2026-03-02T18:00:00Z"
NOBODY = "single-lea-team@county.example"   # integration_team_emails: a listed LEA never writes to it


def run_folder(root: Path, code: str, run_id: str) -> Path:
    return root / "published" / code / YEAR / "SPRG" / run_id.replace("/", "_")


def test_three_leas_run_at_once_on_celery_each_on_its_own_queue_and_pool(tmp_path, smtp_server):
    from tests.integration.vendor_servers.powerschool import PowerSchoolServer

    t0 = time.monotonic()
    lea_queue = f"lea_5610003_{uuid.uuid4().hex[:8]}"   # Cedar's queue, named for this test on the shared Redis
    sis = {lea.code: make_sis(tmp_path / "sis" / f"{lea.code}.db", lea) for lea in THREE}
    owned = {code: sis_ids(path) for code, path in sis.items()}
    leas_file = write_lea_file(tmp_path / "leas.yaml", [ALDER.entry(), BIRCH.entry(),
                                                         CEDAR.entry(queue=lea_queue, pool_slots=2)])
    (tmp_path / "published").mkdir()   # the mounted share; each LEA's runs create <share>/<code>
    cedar_sis = sa.create_engine(f"sqlite:///{sis[CEDAR.code]}")
    with PowerSchoolServer(cedar_sis, PS_CLIENT, PS_SECRET, max_page_size=500) as ps:
        extra_env = {"AIRFLOW__CALPADS__LEAS_FILE": str(leas_file),
                     ALDER.env_conn: f"sqlite:///{sis[ALDER.code]}", BIRCH.env_conn: f"sqlite:///{sis[BIRCH.code]}",
                     CEDAR.env_conn: json.dumps(powerschool_connection(ps.url)), **SETTINGS}
        with start_topology(tmp_path, sis_url="", smtp_port=smtp_server.port, emails=NOBODY, extra_env=extra_env,
                            extra_queues=(lea_queue,)) as topo:
            topo.start_all()
            topo.start("airflow-worker", {"AIRFLOW__OPERATORS__DEFAULT_QUEUE": lea_queue,   # --queues' default
                                          "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())},
                       log_name="airflow-worker-lea", args=("--celery-hostname", f"{lea_queue}@%h"))

            # airflow-init made one pool per LEA SIS connection, with the entry's slots
            pools = {p["name"]: p["slots"] for p in topo.api("GET", "/pools")["pools"]}
            assert {name: pools.get(name) for name in ("sis__sis_db_5610001", "sis__sis_db_5610002",
                                                       "sis__sis_powerschool_5610003")} == \
                   {"sis__sis_db_5610001": 4, "sis__sis_db_5610002": 4, "sis__sis_powerschool_5610003": 2}

            dag_ids = {lea.code: lea.dag_id("SPRG") for lea in THREE}
            for dag_id in dag_ids.values():
                topo.wait_dag(dag_id)
                topo.unpause(dag_id)
            runs = {code: topo.trigger(dag_id, CONF, logical_date=LOGICAL_DATE) for code, dag_id in dag_ids.items()}
            states = {code: topo.wait_run(dag_ids[code], run_id, timeout=300) for code, run_id in runs.items()}
            assert states == dict.fromkeys(dag_ids, "success"), topo.diagnostics()
            t_runs = time.monotonic() - t0

            spans = [topo.api("GET", f"/dags/{dag_ids[code]}/dagRuns/{run_id}") for code, run_id in runs.items()]
            assert max(r["start_date"] for r in spans) < min(r["end_date"] for r in spans), \
                "the three LEAs' runs did not overlap"
            for lea in THREE:
                tis = topo.task_instances(dag_ids[lea.code], runs[lea.code])
                queue = lea_queue if lea is CEDAR else topo.queue
                assert {ti["queue"] for ti in tis.values()} == {queue}, lea.code
                assert tis["extract_records"]["pool"] == f"sis__{lea.conn_id}"
            lea_worker = (topo.logs / "airflow-worker-lea.log").read_text(errors="replace")
            default_worker = (topo.logs / "airflow-worker.log").read_text(errors="replace")
            assert dag_ids[CEDAR.code] in lea_worker and dag_ids[CEDAR.code] not in default_worker
            assert not any(dag_ids[lea.code] in lea_worker for lea in (ALDER, BIRCH))

            for lea in THREE:
                folder = run_folder(tmp_path, lea.code, runs[lea.code])
                others = [ids for code, ids in owned.items() if code != lea.code]
                assert_only_own_records(published_records(folder, "SPRG"), owned[lea.code], others, lea.code)
            assert not (tmp_path / "published" / YEAR).exists(), "published in the shared root"

            # each LEA's summary email (held-back records) goes to its own team only
            def summaries() -> dict[str, list[str]]:
                found = {lea.code: [m["To"] for m, text in zip(smtp_server.messages, smtp_server.texts(),
                                                                strict=True) if f"__{lea.code}" in text]
                         for lea in THREE}
                return found if all(found.values()) else {}

            to = wait_for("each LEA's summary email", summaries, 60)
            assert to == {lea.code: [lea.team] * len(to[lea.code]) for lea in THREE}
    cedar_sis.dispose()
    print(f"three LEAs on Celery: start + runs {t_runs:.0f}s, total {time.monotonic() - t0:.0f}s")
