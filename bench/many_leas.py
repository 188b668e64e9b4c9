"""Many LEAs on the Celery topology: 20 LEAs x 20,000 students at once, beside one 400,000-student LEA.

    .venv/bin/python bench/many_leas.py --small     # smoke run: 3 LEAs x 2,000 students + 1 x 10,000 (~5 min)
    .venv/bin/python bench/many_leas.py             # 20 LEAs x 20,000 + 1 x 400,000 (~30 min on 2 cores)
    .venv/bin/python bench/many_leas.py --many-only --weight-rule upstream --parallelism 4   # LEAs one after another

What it does, in one run:

1. Generates one SQLite demo SIS per LEA (``generate_district(..., lea_code=...)``, distinct CDS codes, a
   program-dense district as bench/run_all.py makes: ``--program-scale 25``, about 3 SPRG records per student)
   into ``bench/cache/many_leas/``, reused by later runs. Generation is not measured.
2. Writes ONE LEA file listing all the LEAs (the many small ones and the big one; ``files: [SPRG]``) and starts the
   CeleryExecutor topology of tests/integration/topology.py (airflow-init, api-server, scheduler, dag-processor,
   triggerer, ``--workers`` Celery workers, a fresh PostgreSQL metadata database and history store, Redis).
   Both phases run on the same processes with the same parsed DAGs and pools; only which DAGs are triggered
   differs (two LEA files would need a second topology or a re-parse between the phases).
3. Phase "many": triggers the small LEAs' ``calpads_sprg__<code>`` DAGs at once through the REST API, as the
   nightly schedule does (the nightly params: submission mode, history not saved), and waits for all of them.
4. Phase "single": the big LEA's ``calpads_sprg__<code>`` alone, on the same topology.
5. Reads every run's queued/start/end and its task instances (with the worker that ran each) from the REST API,
   samples the load average and the workers' resident memory (all their task processes) every 2 s, prints a
   table and writes ``bench/results/many_leas.json`` (``many_leas_small.json`` for ``--small``).

Wall time of a phase: from the first run's ``queued_at`` to the last run's ``end_date``. The ratio is the many
LEAs' wall time over the single LEA's: both phases hold the same number of students in the default sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(ROOT / "include"), str(ROOT / "plugins")]
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# airflow-init.sh runs `airflow`: this interpreter's
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

from tests.integration.topology import start_topology  # noqa: E402

RESULTS = HERE / "results"
CACHE = HERE / "cache" / "many_leas"
YEAR = "2025-2026"
CONF = {"academic_year": YEAR}           # the nightly run's params: submission mode, history not saved
LOGICAL_DATE = "2026-03-02T18:00:00Z"    # a spring date of the demo year (the SPRG submission by the calendar)
SMALL_BASE, BIG_CODE = 5620001, "5629400"  # CDS codes: distinct last four digits, so distinct school codes


def lea_codes(n: int) -> list[str]:
    return [f"{SMALL_BASE + i:07d}" for i in range(n)]


# --------------------------------------------------------------------------- SIS databases (not measured)
def cached_sis(code: str, students: int, scale: float, seed: int) -> Path:
    """The demo SIS of LEA ``code``, generated once into the cache folder (written under a temporary name, so
    an interrupted generation is never reused)."""
    import sqlalchemy as sa

    from calpads.demo.generator import generate_district
    from calpads.private_files import create_private

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"sis_{code}_{students}_p{scale:g}_s{seed}.db"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    create_private(str(tmp))   # demo student data: owner-only, like every SQLite file the pipeline writes
    t0 = time.perf_counter()
    engine = sa.create_engine(f"sqlite:///{tmp}")
    try:
        generate_district(engine, students=students, seed=seed, dirty=0.01, academic_year=YEAR, attendance=False,
                          program_rate_scale=scale, lea_code=code, log=lambda _m: None)
    finally:
        engine.dispose()
    tmp.rename(path)
    print(f"generated LEA {code}: {students:,} students in {time.perf_counter() - t0:.0f}s -> {path.name}", flush=True)
    return path


def lea_file(path: Path, sis: dict[str, Path]) -> None:
    """One LEA file for every LEA of both phases (SPRG only), each on its own SIS connection and pool."""
    import yaml

    doc = {"defaults": {"timezone": "America/Los_Angeles", "files": ["SPRG"]},
           "leas": [{"code": code, "name": f"Bench LEA {code}", "sis": {"source": "sql", "conn_id": f"sis_db_{code}"},
                     "emails": {"team": [f"data@lea{code}.example"]}} for code in sis]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


# --------------------------------------------------------------------------- sampling while a phase runs
class Sampler(threading.Thread):
    """Every ``interval`` s: the 1-minute load average and the resident memory of the workers' process trees
    (the Celery workers, their pool processes and the task processes they start)."""

    def __init__(self, worker_pids: list[int], interval: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.pids, self.interval = worker_pids, interval
        self.stop_event = threading.Event()
        self.peak_rss_mb = 0.0
        self.loads: list[float] = []

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.interval)

    def sample(self) -> None:
        rss = 0
        for pid in self.pids:
            try:
                root = psutil.Process(pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for p in procs:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
        self.peak_rss_mb = max(self.peak_rss_mb, rss / 2**20)
        self.loads.append(os.getloadavg()[0])

    def stop(self) -> dict[str, Any]:
        self.stop_event.set()
        self.join(timeout=10)
        mean = sum(self.loads) / max(1, len(self.loads))
        return {"peak_worker_rss_mb": round(self.peak_rss_mb), "load1_mean": round(mean, 2),
                "load1_max": round(max(self.loads, default=0.0), 2)}


# --------------------------------------------------------------------------- one phase
def ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def tasks_received(topo: Any) -> dict[str, int]:
    """Celery tasks each worker has received so far (its log's "Task execute_workload[...] received" lines): the
    task instances' hostname is the machine's, the same for both workers."""
    return {name: topo.log_tail(name, 10**9).count("] received [") for name in topo.procs
            if name.startswith("airflow-worker")}


def worker_rss_mb(worker_pids: list[int]) -> int:
    sampler = Sampler(worker_pids)
    sampler.sample()
    return round(sampler.peak_rss_mb)


def run_phase(topo: Any, name: str, codes: list[str], worker_pids: list[int], timeout: float) -> dict[str, Any]:
    """Trigger ``calpads_sprg__<code>`` of every code at once; wait for all; the runs' and tasks' times."""
    idle_rss, received_before = worker_rss_mb(worker_pids), tasks_received(topo)
    sampler = Sampler(worker_pids)
    sampler.start()
    t0 = time.time()
    runs = {code: topo.trigger(f"calpads_sprg__{code}", CONF, logical_date=LOGICAL_DATE) for code in codes}
    print(f"[{name}] triggered {len(runs)} run(s) in {time.time() - t0:.1f}s", flush=True)
    pending, deadline = dict(runs), time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for code, run_id in list(pending.items()):
            if topo.run_state(f"calpads_sprg__{code}", run_id) in ("success", "failed"):
                del pending[code]
                print(f"[{name}] LEA {code} finished at +{time.time() - t0:.0f}s ({len(pending)} left)", flush=True)
        time.sleep(3)
    samples = sampler.stop()
    received = {w: n - received_before.get(w, 0) for w, n in tasks_received(topo).items()}
    if pending:
        raise TimeoutError(f"[{name}] runs not finished after {timeout:.0f}s: {sorted(pending)}")
    out = []
    for code, run_id in runs.items():
        dag_id = f"calpads_sprg__{code}"
        run = topo.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        tis = topo.task_instances(dag_id, run_id)
        q, s, e = ts(run["queued_at"]), ts(run["start_date"]), ts(run["end_date"])
        out.append({
            "lea": code, "dag_id": dag_id, "run_id": run_id, "state": run["state"],
            "queued_at": run["queued_at"], "start_date": run["start_date"], "end_date": run["end_date"],
            "queued_to_end_s": round(e - q, 1), "start_to_end_s": round(e - s, 1),
            "tasks": {t: {"state": ti["state"], "duration_s": ti["duration"], "hostname": ti["hostname"],
                          "start_date": ti["start_date"], "end_date": ti["end_date"], "try_number": ti["try_number"]}
                      for t, ti in tis.items()},
            "task_seconds": round(sum(ti["duration"] or 0 for ti in tis.values()), 1),
        })
    first_queued = min(ts(r["queued_at"]) for r in out)
    last_end = max(ts(r["end_date"]) for r in out)
    slowest = max(out, key=lambda r: r["queued_to_end_s"])
    hosts = sorted({t["hostname"] for r in out for t in r["tasks"].values() if t["hostname"]})
    return {"phase": name, "leas": len(out), "wall_s": round(last_end - first_queued, 1),
            "slowest_lea": slowest["lea"], "slowest_queued_to_end_s": slowest["queued_to_end_s"],
            "fastest_queued_to_end_s": min(r["queued_to_end_s"] for r in out),
            "median_queued_to_end_s": statistics.median(r["queued_to_end_s"] for r in out),
            "task_seconds_total": round(sum(r["task_seconds"] for r in out), 1),
            "all_success": all(r["state"] == "success" for r in out), "hostnames": hosts,
            "tasks_per_worker": received, "idle_worker_rss_mb": idle_rss, **samples, "runs": out}


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="smoke run: 3 LEAs x 2,000 students + 1 x 10,000")
    ap.add_argument("--leas", type=int, help="how many small LEAs (default 20; --small 3)")
    ap.add_argument("--students", type=int, help="students per small LEA (default 20,000; --small 2,000)")
    ap.add_argument("--big", type=int, help="students of the single LEA (default 400,000; --small 10,000)")
    ap.add_argument("--program-scale", type=float, default=25.0, help="program_rate_scale of the demo districts")
    ap.add_argument("--workers", type=int, default=2, help="Celery workers")
    ap.add_argument("--concurrency", type=int, default=2, help="task slots per worker (WORKER_CONCURRENCY)")
    ap.add_argument("--timeout", type=float, default=5400, help="seconds to wait for a phase")
    ap.add_argument("--weight-rule", choices=["downstream", "upstream", "absolute"],
                    help="[core] default_task_weight_rule (Airflow's default: downstream)")
    ap.add_argument("--parallelism", type=int,
                    help="[core] parallelism: tasks the scheduler keeps queued or running (Airflow's default: 32)")
    ap.add_argument("--many-only", action="store_true", help="skip the single big LEA's phase")
    ap.add_argument("--keep", action="store_true", help="keep the run folder (logs, work and published files)")
    args = ap.parse_args(argv)
    n = args.leas or (3 if args.small else 20)
    students = args.students or (2_000 if args.small else 20_000)
    big = args.big or (10_000 if args.small else 400_000)

    from calpads.demo.mailbox import start as start_mailbox

    sis = {code: cached_sis(code, students, args.program_scale, seed=11 + i) for i, code in enumerate(lea_codes(n))}
    sis[BIG_CODE] = cached_sis(BIG_CODE, big, args.program_scale, seed=7)
    small_codes = list(sis)[:-1]

    root = Path(tempfile.mkdtemp(prefix="many_leas_"))
    (root / "published").mkdir()
    for code in sis:
        (root / "published" / code).mkdir()   # each LEA's mounted share (a run never creates it)
    lea_file(root / "leas.yaml", sis)
    extra_env = {
        "AIRFLOW__CALPADS__LEAS_FILE": str(root / "leas.yaml"),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(args.concurrency),
        # the topology test's 30 s detects a killed worker fast; under this load a slow heartbeat is not a dead task
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "300",
        **({"AIRFLOW__CORE__DEFAULT_TASK_WEIGHT_RULE": args.weight_rule} if args.weight_rule else {}),
        **({"AIRFLOW__CORE__PARALLELISM": str(args.parallelism)} if args.parallelism else {}),
        **{f"AIRFLOW_CONN_SIS_DB_{code}": f"sqlite:///{path}" for code, path in sis.items()},
    }
    uptime_before = os.popen("uptime").read().strip()  # noqa: S605,S607
    print(f"uptime before: {uptime_before}", flush=True)
    mailbox = start_mailbox(root / "mail", port=0)
    t_start = time.time()
    try:
        with start_topology(root, sis_url=f"sqlite:///{sis[small_codes[0]]}", smtp_port=mailbox.port, retries=0,
                            extra_env=extra_env) as topo:
            topo.start_all(workers=args.workers)
            for code in sis:
                topo.wait_dag(f"calpads_sprg__{code}", timeout=600)
                topo.unpause(f"calpads_sprg__{code}")
            pools = {p["name"]: p["slots"] for p in topo.api("GET", "/pools", params={"limit": 100})["pools"]}
            worker_pids = [p.pid for name, p in topo.procs.items() if name.startswith("airflow-worker")]
            print(f"topology up in {time.time() - t_start:.0f}s; {len(worker_pids)} workers; pools {pools}", flush=True)
            many = run_phase(topo, "many", small_codes, worker_pids, args.timeout)
            single = None if args.many_only else run_phase(topo, "single", [BIG_CODE], worker_pids, args.timeout)
    finally:
        mailbox.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    uptime_after = os.popen("uptime").read().strip()  # noqa: S605,S607
    result = {
        "run": datetime.now().isoformat(timespec="seconds"), "small": args.small,
        "small_leas": n, "students_per_lea": students, "big_lea_students": big, "program_scale": args.program_scale,
        "workers": args.workers, "worker_concurrency": args.concurrency, "pools": pools,
        "cpus": os.cpu_count(), "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "uptime_before": uptime_before, "uptime_after": uptime_after,
        "weight_rule": args.weight_rule or "downstream", "parallelism": args.parallelism or 32,
        "ratio_many_over_single": round(many["wall_s"] / single["wall_s"], 2) if single else None,
        "many": many, "single": single, "bench_seconds": round(time.time() - t_start),
    }
    RESULTS.mkdir(exist_ok=True)
    suffix = ("_small" if args.small else "") + (f"_{args.weight_rule}" if args.weight_rule else "") + (
        f"_p{args.parallelism}" if args.parallelism else "")
    out = RESULTS / f"many_leas{suffix}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print_table(result)
    print(f"wrote {out.relative_to(ROOT)}; run folder {'kept at ' + str(root) if args.keep else 'removed'}")
    return 0 if many["all_success"] and (single is None or single["all_success"]) else 1


def print_table(r: dict[str, Any]) -> None:
    many = r["many"]
    phases = [p for p in (many, r["single"]) if p]
    print(f"\n{r['small_leas']} LEAs x {r['students_per_lea']:,} students vs 1 LEA x {r['big_lea_students']:,}; "
          f"{r['workers']} workers x {r['worker_concurrency']} slots")
    print(f"{'LEA':>8} {'state':>8} {'queued->end s':>14} {'start->end s':>13} {'task s':>8}  "
          "extract/gate/diff/publish/save s")
    for run in [run for p in phases for run in p["runs"]]:
        t = run["tasks"]
        stages = "/".join(f"{(t.get(k) or {}).get('duration_s') or 0:.0f}" for k in
                          ("extract_records", "quality_gate", "diff_against_history", "publish_files",
                           "save_submission_history"))
        print(f"{run['lea']:>8} {run['state']:>8} {run['queued_to_end_s']:>14.1f} {run['start_to_end_s']:>13.1f} "
              f"{run['task_seconds']:>8.1f}  {stages}")
    for p in phases:
        print(f"{p['phase']:>6}: wall {p['wall_s']:.1f}s, slowest LEA {p['slowest_lea']} "
              f"{p['slowest_queued_to_end_s']:.1f}s, "
              f"task seconds {p['task_seconds_total']:.0f}, workers' RSS peak {p['peak_worker_rss_mb']} MB "
              f"(idle {p['idle_worker_rss_mb']} MB), load1 mean {p['load1_mean']} max {p['load1_max']}, "
              f"tasks per worker {p['tasks_per_worker']}")
    print(f"first / median LEA ready at {many['fastest_queued_to_end_s']:.0f} / "
          f"{many['median_queued_to_end_s']:.0f} s; "
          f"ratio (many wall / single wall): {r['ratio_many_over_single']}")
    print(f"uptime before: {r['uptime_before']}\nuptime after:  {r['uptime_after']}")


if __name__ == "__main__":
    sys.exit(main())
