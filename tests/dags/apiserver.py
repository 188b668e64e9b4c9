"""A real `airflow api-server` on the metadata database of `airflow dags test` runs (SQLite), with the simple
auth manager's admin login: for tests of what the UI and the REST API show about those runs."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.integration.topology import free_port, kill_tree, wait_for

ADMIN = "admin"


@dataclass
class ApiServer:
    url: str
    password: str

    def token(self) -> str:
        r = requests.post(f"{self.url}/auth/token", json={"username": ADMIN, "password": self.password}, timeout=10)
        r.raise_for_status()
        return r.json()["access_token"]


def api_server_env(env: dict[str, str], folder: Path, password: str) -> tuple[dict[str, str], int]:
    """``env`` plus an api-server port, the admin login and the run notes' connection (returned with the port)."""
    port = free_port()
    passwords = folder / "passwords.json"
    passwords.write_text(json.dumps({ADMIN: password}))
    passwords.chmod(0o600)
    return {**env,
            "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": "a-test-only-jwt-secret-of-sufficient-length-0123456789abcdef",
            "AIRFLOW_CONN_AIRFLOW_API": f"http://{ADMIN}:{password}@127.0.0.1:{port}"}, port


@contextlib.contextmanager
def api_server(env: dict[str, str], port: int, password: str, log_path: Path) -> Iterator[ApiServer]:
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "--port", str(port)], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        server = ApiServer(f"http://127.0.0.1:{port}", password)
        try:
            wait_for("the api-server", lambda: requests.get(f"{server.url}/api/v2/monitor/health", timeout=5).ok,
                     240, on_timeout=lambda: log_path.read_text()[-3000:])
            yield server
        finally:
            kill_tree(proc.pid)
            proc.wait(timeout=30)
