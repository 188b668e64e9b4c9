"""The docker-compose topology on this machine: CeleryExecutor, PostgreSQL, Redis, every service.

Run 1 is triggered through the REST API and must succeed on the Celery worker and publish
complete files. Run 2's worker is SIGKILLed in the middle of `publish_files` (a half-copied
temporary file in the publish folder, as a real kill leaves it); a new worker picks up the retry
and the run succeeds with exactly the manifest's files and no temporary file.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from tests.integration.topology import make_demo_sis, pause_hook_env, start_topology, wait_for

pytestmark = [pytest.mark.topology, pytest.mark.postgres]

DAG = "calpads_sprg"
CONF = {"academic_year": "2025-2026"}


@pytest.fixture(scope="module")
def demo_sis(tmp_path_factory) -> str:
    return make_demo_sis(tmp_path_factory.mktemp("sis") / "sis.db")


def run_folder(root: Path, run_id: str) -> Path:
    return root / "published" / "2025-2026" / "SPRG" / run_id.replace("/", "_")


def check_published(folder: Path) -> dict:
    """The folder holds exactly the manifest's files, whole, and their counts add up."""
    manifest = json.loads((folder / "manifest.json").read_text())
    assert not [p.name for p in folder.rglob("*.partial")], "temporary file left in the publish folder"
    txt = sorted(p.name for p in folder.glob("*.txt"))
    assert txt == sorted(f["name"] for f in manifest["files"])
    for entry in manifest["files"]:
        data = (folder / entry["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["name"]
        assert data.count(b"\n") == entry["records"], entry["name"]
    counts = manifest["counts"]
    by_kind = {f["kind"]: f["records"] for f in manifest["files"]}
    assert counts["split_files_add_up"] is True
    assert by_kind["full"] == counts["records_in_full_file"] == sum(n for k, n in by_kind.items() if k != "full")
    validation = manifest["validation"]
    assert counts["records_in_full_file"] == validation["records_checked"] - validation["records_held_back"] > 0
    assert (folder / "report" / "index.html").exists()
    return manifest


def test_compose_topology_runs_on_celery_and_survives_a_killed_worker(tmp_path, demo_sis, smtp_server):
    t0 = time.monotonic()
    hook_env, marker = pause_hook_env(tmp_path)
    marker.write_text("disarmed")  # run 1 publishes without pausing
    with start_topology(tmp_path, sis_url=demo_sis, smtp_port=smtp_server.port) as topo:
        topo.start_all(worker_env=hook_env)
        dag = topo.wait_dag(DAG)
        assert dag["is_paused"] is True  # DAGS_ARE_PAUSED_AT_CREATION, as in docker-compose.yaml
        topo.unpause(DAG)

        # ---- run 1: REST API trigger, CeleryExecutor, success, complete files
        run1 = topo.trigger(DAG, CONF, logical_date="2026-03-02T18:00:00Z")
        assert topo.wait_run(DAG, run1) == "success", topo.diagnostics()
        tis = topo.task_instances(DAG, run1)
        assert {ti["state"] for t, ti in tis.items() if t != "run_outcome"} == {"success"}
        assert tis["run_outcome"]["state"] == "success"   # the watcher runs every time, fails only on a failure
        assert {ti["queue"] for ti in tis.values() if ti["state"] == "success"} == {topo.queue}
        assert "execute_workload" in (topo.logs / "airflow-worker.log").read_text()
        extracted = topo.api("GET", f"/dags/{DAG}/dagRuns/{run1}/taskInstances/extract_records/xcomEntries/"
                                    "return_value", params={"deserialize": True})["value"]
        manifest1 = check_published(run_folder(tmp_path, run1))
        assert manifest1["validation"]["records_checked"] == _as_dict(extracted)["records_extracted"]
        assert manifest1["run_id"] == run1
        validation = manifest1["validation"]
        if validation["records_held_back"] or validation["records_warned"]:
            # the summary email went through the SMTP relay set by airflow-init (smtp_default)
            wait_for("the summary email", lambda: any(DAG in t for t in smtp_server.texts()), 30)
        t_run1 = time.monotonic() - t0

        # ---- run 2: SIGKILL the worker while publish_files is copying a file
        marker.unlink()
        run2 = topo.trigger(DAG, CONF, logical_date="2026-03-03T18:00:00Z")
        wait_for("publish_files to pause mid-copy", marker.exists, 240, on_timeout=topo.diagnostics)
        folder2 = run_folder(tmp_path, run2)
        building = folder2.parent / f".{folder2.name}.incomplete"   # the run folder is built under a hidden name
        assert [p.name for p in building.glob(".*.partial")], "the paused copy left no temporary file"
        assert not list(folder2.glob("*.txt")), "an extract file is visible before its manifest"
        publish_ti = topo.task_instances(DAG, run2)["publish_files"]
        assert (publish_ti["state"], publish_ti["try_number"]) == ("running", 1)
        topo.kill("airflow-worker")
        topo.start("airflow-worker", hook_env, log_name="airflow-worker-2")

        assert topo.wait_run(DAG, run2, timeout=300) == "success", topo.diagnostics()
        tis2 = topo.task_instances(DAG, run2)
        assert tis2["publish_files"]["try_number"] == 2  # retried after the heartbeat timeout
        assert tis2["publish_files"]["state"] == "success"
        assert "execute_workload" in (topo.logs / "airflow-worker-2.log").read_text()
        manifest2 = check_published(folder2)
        assert not building.exists(), "the retry did not remove the killed attempt's folder"
        # Same SIS, nothing saved as submitted: run 2 publishes exactly run 1's files.
        assert [(f["name"], f["records"], f["sha256"]) for f in manifest2["files"]] == \
               [(f["name"], f["records"], f["sha256"]) for f in manifest1["files"]]
        _report_timing(tmp_path, t_run1, time.monotonic() - t0)


def _as_dict(value) -> dict:
    return json.loads(value) if isinstance(value, str) else value


def _report_timing(root: Path, run1: float, total: float) -> None:
    print(f"topology: start + run 1 {run1:.0f}s, total with the killed worker {total:.0f}s")
    (root / "timing.txt").write_text(f"{run1:.0f} {total:.0f}\n")
