"""The docker-compose topology without Docker: the same Airflow processes, started directly.

`airflow-init` (scripts/airflow-init.sh), then api-server, scheduler, dag-processor,
triggerer and a Celery worker, with the commands of docker-compose.yaml
(`SERVICES`), against a fresh PostgreSQL metadata database and the Redis on this
machine. Every process runs in its own process group, logs to `<root>/logs/`,
and is torn down (whole process tree) when the context manager exits; every wait
is bounded. tests/integration/test_compose_file.py checks that docker-compose.yaml
runs the same commands with the same settings (`COMMON_SETTINGS`, `HOST_SETTINGS`).

    with start_topology(tmp_path, sis_url=..., smtp_port=...) as topo:
        topo.start_all()
        run_id = topo.trigger("calpads_sprg", {...})
        topo.wait_run("calpads_sprg", run_id)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests
import sqlalchemy as sa

from tests.conftest import PG_ADMIN_URL, ROOT, airflow_base_env, require_postgres, smtp_conn_uri

AIRFLOW = [sys.executable, "-m", "airflow"]
INIT_SCRIPT = ROOT / "scripts" / "airflow-init.sh"
REDIS_URL = os.environ.get("CALPADS_TEST_REDIS", "redis://127.0.0.1:6379/0")
ADMIN = "admin"

# docker-compose service -> `airflow` arguments (the image's entrypoint prepends `airflow`).
SERVICES: dict[str, list[str]] = {
    "airflow-apiserver": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
    "airflow-worker": ["celery", "worker"],
}

# Settings every service gets with exactly this value, here and in docker-compose.yaml.
COMMON_SETTINGS: dict[str, str] = {
    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
    "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "true",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "true",
    "GX_ANALYTICS_ENABLED": "false",
}
# Settings every service gets whose value depends on the host (service names, paths, secrets):
# name -> a prefix or suffix check both files must pass.
HOST_SETTINGS: dict[str, Callable[[str], bool]] = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": lambda v: v.startswith("postgresql+psycopg2://"),
    "AIRFLOW__CELERY__BROKER_URL": lambda v: v.startswith("redis://"),
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3: name the installed driver.
    "AIRFLOW__CELERY__RESULT_BACKEND": lambda v: v.startswith("db+postgresql+psycopg2://"),
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": lambda v: v.startswith("http") and v.endswith("/execution/"),
    "AIRFLOW__CORE__DAGS_FOLDER": lambda v: v.endswith("/dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": lambda v: v.endswith("/plugins"),
    "CALPADS_GX_ROOT": lambda v: v.endswith("/great_expectations"),
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": lambda v: v.endswith(":admin"),
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": lambda v: v.endswith(".json"),
    "AIRFLOW__API_AUTH__JWT_SECRET": bool,
    "AIRFLOW__API__SECRET_KEY": bool,
    "AIRFLOW__CORE__FERNET_KEY": bool,
    "AIRFLOW__CALPADS__TASK_RETRIES": str.isdigit,
}
# Settings only airflow-init reads (connections and variables it writes to the metadata DB).
INIT_SETTINGS = ("_AIRFLOW_WWW_USER_PASSWORD", "CALPADS_SIS_DB_URI", "CALPADS_STORE_URI", "CALPADS_SMTP_URI",
                 "CALPADS_PUBLISH_ROOT", "CALPADS_WORK_ROOT", "CALPADS_TEAM_EMAILS")
# Test-only settings (not in docker-compose.yaml): free ports beside other test runs, a private
# Celery queue on the shared Redis, fast failure detection and retries, a light footprint on 2 cores.
TEST_ONLY_SETTINGS = ("AIRFLOW__API__PORT", "AIRFLOW__API__HOST", "AIRFLOW__OPERATORS__DEFAULT_QUEUE",
                      "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
                      "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT",
                      "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE", "AIRFLOW__CELERY__WORKER_CONCURRENCY",
                      "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT",
                      "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL",
                      "AIRFLOW__CALPADS__RETRY_DELAY_SECONDS", "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL")

# A test-only hook for the worker (written as sitecustomize.py on its PYTHONPATH, never in production
# code): the first time a task publishes an extract file, copy half of it to the hidden temporary
# name, as a worker killed in the middle of the copy leaves it, write the marker file and sleep, so
# the test can SIGKILL the worker right there. Later attempts (marker present) publish normally.
PAUSE_HOOK = '''
import os
_marker = os.environ.get("CALPADS_TEST_PAUSE_PUBLISH")
if _marker:
    import time
    from calpads.publish import target as _target
    _put_file = _target.put_file

    def _paused_put_file(local, dest_folder, name):
        if name.endswith(".txt") and not os.path.exists(_marker):
            data = local.read_bytes()
            with (dest_folder / f".{name}.partial").open("wb") as dst:
                dst.write(data[: len(data) // 2])
            with open(_marker, "w") as fh:
                fh.write(str(os.getpid()))
            time.sleep(float(os.environ.get("CALPADS_TEST_PAUSE_SECONDS", "300")))
        return _put_file(local, dest_folder, name)

    _target.put_file = _paused_put_file
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0,
              on_timeout: Callable[[], str] | None = None) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (requests.RequestException, OSError) as exc:
            last_error = exc
        time.sleep(interval)
    detail = on_timeout() if on_timeout else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error})\n{detail}")


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a process, its process group and every descendant (Celery pool children and task
    supervisors may start their own groups)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        procs = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(sig)


@dataclass
class Topology:
    root: Path
    env: dict[str, str]
    init_env: dict[str, str]
    api_url: str
    password: str
    queue: str
    databases: list[str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    _token: str | None = None

    # ------------------------------------------------------------------ processes
    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def run_init(self, timeout: float = 300) -> str:
        env = {**self.env, **self.init_env}
        proc = subprocess.run(["bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=timeout)
        out = proc.stdout + proc.stderr
        (self.logs / "airflow-init.log").write_text(out)
        assert proc.returncode == 0, f"airflow-init failed:\n{out[-4000:]}"
        return out

    def start(self, service: str, extra_env: dict[str, str] | None = None, log_name: str | None = None,
              args: tuple[str, ...] = ()) -> subprocess.Popen:
        """Start a docker-compose service's command (plus ``args``) in its own process group."""
        log = (self.logs / f"{log_name or service}.log").open("ab")
        proc = subprocess.Popen([*AIRFLOW, *SERVICES[service], *args], env={**self.env, **(extra_env or {})},
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=self.root, start_new_session=True)
        log.close()
        self.procs[log_name or service] = proc
        return proc

    def start_all(self, worker_env: dict[str, str] | None = None, workers: int = 1) -> None:
        """Every service; ``workers`` Celery workers (the first logs to airflow-worker.log, the n-th to
        airflow-worker-<n>.log), as ``docker compose up --scale airflow-worker=<n>`` runs them."""
        for service in SERVICES:
            if service != "airflow-worker":
                self.start(service)
        for n in range(1, workers + 1):
            self.start_worker(n, worker_env)
        self.wait_api()

    def start_worker(self, n: int = 1, worker_env: dict[str, str] | None = None) -> subprocess.Popen:
        """Celery worker number n; a second one on this host needs its own node name and log-server port."""
        if n == 1:
            return self.start("airflow-worker", worker_env)
        env = {**(worker_env or {}), "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}
        return self.start("airflow-worker", env, log_name=f"airflow-worker-{n}",
                          args=("--celery-hostname", f"worker{n}@%h"))

    def kill(self, name: str, sig: int = signal.SIGKILL, timeout: float = 30) -> None:
        proc = self.procs.pop(name)
        kill_tree(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        # Workers first (they hold task processes), then the rest; SIGTERM then SIGKILL.
        names = sorted(self.procs, key=lambda n: not n.startswith("airflow-worker"))
        for name in names:
            kill_tree(self.procs[name].pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name in names:
            proc = self.procs.pop(name)
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            kill_tree(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def diagnostics(self) -> str:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        return f"exited: {dead}\n" + "\n".join(f"--- {n}\n{self.log_tail(n, 1500)}" for n in self.procs)

    # ------------------------------------------------------------------ REST API
    def token(self) -> str:
        if self._token is None:
            r = requests.post(f"{self.api_url}/auth/token", json={"username": ADMIN, "password": self.password},
                              timeout=30)
            r.raise_for_status()
            self._token = r.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        r = requests.request(method, f"{self.api_url}/api/v2{path}", timeout=30,
                             headers={"Authorization": f"Bearer {self.token()}"}, **kwargs)
        if r.status_code >= 400:
            raise AssertionError(f"{method} {path} -> {r.status_code}: {r.text[:1000]}")
        return r.json() if r.content else None

    def wait_api(self, timeout: float = 180) -> None:
        def up() -> bool:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            return requests.get(f"{self.api_url}/api/v2/version", timeout=5).ok

        wait_for("the api-server", up, timeout, on_timeout=self.diagnostics)

    def wait_dag(self, dag_id: str, timeout: float = 180) -> dict:
        def parsed() -> dict | None:
            dags = self.api("GET", "/dags", params={"dag_id_pattern": dag_id})["dags"]
            return next((d for d in dags if d["dag_id"] == dag_id), None)

        return wait_for(f"{dag_id} to be parsed by the dag-processor", parsed, timeout, interval=2,
                        on_timeout=self.diagnostics)

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any], logical_date: str | None = None) -> str:
        body = {"logical_date": logical_date, "conf": conf}
        return self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict]:
        tis = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti for ti in tis}

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 240) -> str:
        def finished() -> str | None:
            state = self.run_state(dag_id, run_id)
            return state if state in ("success", "failed") else None

        def detail() -> str:
            states = {t: ti["state"] for t, ti in self.task_instances(dag_id, run_id).items()}
            return f"task states: {states}\n{self.diagnostics()}"

        return wait_for(f"run {run_id} to finish", finished, timeout, interval=2, on_timeout=detail)


def _create_db(admin: sa.Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')


def _drop_db(admin: sa.Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _clean_redis(queue: str) -> None:
    """Remove this run's Celery queue and any unacknowledged message of it (a killed worker's)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        stale = [queue, *client.scan_iter(match=f"*{queue}*", count=1000)]  # queue, kombu bindings
        client.delete(*stale)
        for tag, payload in client.hscan_iter("unacked"):
            if queue.encode() in payload:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
    except redis.RedisError:
        pass
    finally:
        client.close()


def service_env(home: Path, *, pg: str, meta_db: str, api_port: int, queue: str,
                retries: int = 2) -> dict[str, str]:
    """The environment of every service: the project's base env, COMMON_SETTINGS, HOST_SETTINGS and
    TEST_ONLY_SETTINGS (pg is user@host:port)."""
    env = airflow_base_env(home)
    env.update(COMMON_SETTINGS)
    env.update({
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}/{meta_db}",
        "AIRFLOW__CELERY__BROKER_URL": REDIS_URL,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{pg}/{meta_db}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "CALPADS_GX_ROOT": str(ROOT / "great_expectations"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "auth" / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
        "AIRFLOW__CALPADS__TASK_RETRIES": str(retries),
        # test-only (TEST_ONLY_SETTINGS)
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # no nightly run beside the test's runs
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",  # a killed worker's task fails fast
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        "AIRFLOW__CALPADS__RETRY_DELAY_SECONDS": "3",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
    })
    return env


@contextlib.contextmanager
def start_topology(root: Path, *, sis_url: str, smtp_port: int, emails: str = "team@district.example",
                   retries: int = 2, extra_env: dict[str, str] | None = None,
                   extra_queues: tuple[str, ...] = ()) -> Iterator[Topology]:
    """A fresh metadata database and history store on PostgreSQL, the project's settings, airflow-init
    run; the caller starts the services. Everything is stopped and dropped on exit. ``extra_env`` goes to
    every service and to airflow-init (e.g. the LEA file and its connections); ``extra_queues`` are Celery
    queues of the test's own (an LEA's ``queue``) removed from Redis on exit as the topology's own is."""
    require_postgres()
    tag = uuid.uuid4().hex[:10]
    meta_db, store_db = f"calpads_topo_{tag}", f"calpads_topo_{tag}_store"
    pg = PG_ADMIN_URL.split("://", 1)[1].rsplit("/", 1)[0]  # user@host:port
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    home = root / "airflow_home"
    (root / "logs").mkdir(parents=True, exist_ok=True)
    (root / "published").mkdir(parents=True, exist_ok=True)   # the mounted share: a run never creates it
    home.mkdir(parents=True, exist_ok=True)
    api_port = free_port()
    queue = f"calpads_topo_{tag}"
    password = secrets.token_urlsafe(16)

    env = service_env(home, pg=pg, meta_db=meta_db, api_port=api_port, queue=queue, retries=retries)
    env.update(extra_env or {})
    init_env = {
        "_AIRFLOW_WWW_USER_PASSWORD": password,
        "CALPADS_SIS_DB_URI": sis_url,
        "CALPADS_STORE_URI": f"postgresql://{pg}/{store_db}",
        "CALPADS_SMTP_URI": smtp_conn_uri(smtp_port),
        "CALPADS_PUBLISH_ROOT": f"file://{root / 'published'}",
        "CALPADS_WORK_ROOT": str(root / "work"),
        "CALPADS_TEAM_EMAILS": emails,
    }
    _create_db(admin, meta_db)
    _create_db(admin, store_db)
    topo = Topology(root=root, env=env, init_env=init_env, api_url=f"http://127.0.0.1:{api_port}",
                    password=password, queue=queue, databases=[meta_db, store_db])
    try:
        topo.run_init()
        yield topo
    finally:
        try:
            topo.stop_all()
        finally:
            for name in topo.databases:
                _drop_db(admin, name)
            admin.dispose()
            for name in (queue, *extra_queues):
                _clean_redis(name)


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def pause_hook_env(root: Path) -> tuple[dict[str, str], Path]:
    """Worker env that installs PAUSE_HOOK; returns it and the marker file the hook writes."""
    hook_dir = root / "pause_hook"
    hook_dir.mkdir(exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(PAUSE_HOOK)
    marker = root / "publish_paused"
    return {"PYTHONPATH": f"{hook_dir}:{ROOT / 'plugins'}", "CALPADS_TEST_PAUSE_PUBLISH": str(marker)}, marker


def make_demo_sis(path: Path, students: int = 400) -> str:
    """A small clean demo SIS (SQLite) for topology runs; its connection URI."""
    from calpads.demo.generator import generate_district

    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        generate_district(engine, students=students, seed=3, dirty=0.0, log=lambda _msg: None)
    finally:
        engine.dispose()
    return f"sqlite:///{path}"
