"""docker-compose.yaml runs what tests/integration/test_topology.py proves (no Docker engine here):
the same services and commands, the same settings, the shared volumes every worker needs, and a
.env.example that names every setting the file reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.integration.topology import (
    COMMON_SETTINGS,
    HOST_SETTINGS,
    INIT_SCRIPT,
    INIT_SETTINGS,
    SERVICES,
    TEST_ONLY_SETTINGS,
    service_env,
)

COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
# ${VAR}, ${VAR:-default}, ${VAR:?error}; innermost first (no "$" in the default); $$ escapes a $.
VAR = re.compile(r"(?<!\$)\$\{(\w+)(?::?([-?])([^}$]*))?\}")


def dotenv(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def interpolate(value: object, env: dict[str, str]) -> str:
    """docker compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, nested defaults included."""
    text = str(value)
    for _ in range(5):
        text = VAR.sub(lambda m: env.get(m.group(1)) or (m.group(3) if m.group(2) == "-" else ""), text)
    return text


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def filled_env() -> dict[str, str]:
    """.env.example with the blanks docker compose requires (${VAR:?...}) filled in."""
    required = {m.group(1) for m in VAR.finditer(COMPOSE.read_text()) if m.group(2) == "?"}
    env = dotenv(ENV_EXAMPLE)
    return {k: v or (f"filled-{k.lower()}" if k in required else "") for k, v in env.items()}


def service_environment(service: dict, env: dict[str, str]) -> dict[str, str]:
    return {k: interpolate(v, env) for k, v in (service.get("environment") or {}).items()}


def mounts(service: dict, env: dict[str, str] | None = None) -> dict[str, str]:
    """container path -> source (host path or volume name), after interpolation."""
    out = {}
    for spec in service.get("volumes", []):
        source, target = interpolate(spec, env or {}).split(":")[:2]
        out[target] = source
    return out


def test_every_service_of_the_topology_test_runs_the_same_command(compose):
    services = compose["services"]
    assert {"postgres", "redis", "airflow-init", *SERVICES} <= set(services)
    for name, argv in SERVICES.items():
        command = services[name]["command"]
        assert (command.split() if isinstance(command, str) else command) == argv, name
    init = services["airflow-init"]
    assert init["command"][0] == "bash" and init["command"][1].endswith("scripts/airflow-init.sh")
    assert mounts(init)[init["command"][1]] == "./scripts/airflow-init.sh"
    assert INIT_SCRIPT.exists()
    for name in SERVICES:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_services_get_the_settings_the_topology_test_runs_with(compose, filled_env, tmp_path):
    harness = service_env(tmp_path, pg="postgres@127.0.0.1:5432", meta_db="meta", api_port=8080, queue="q")
    # what the harness sets itself (airflow_base_env drops inherited AIRFLOW__*; other names pass through)
    harness_keys = {k for k in harness if k.startswith("AIRFLOW__")} | set(COMMON_SETTINGS) | set(HOST_SETTINGS)
    for name in [*SERVICES, "airflow-init"]:
        env = service_environment(compose["services"][name], filled_env)
        missing = harness_keys - set(env) - set(TEST_ONLY_SETTINGS)
        assert not missing, f"{name} lacks settings the topology test runs with: {sorted(missing)}"
        for key, value in COMMON_SETTINGS.items():
            assert env[key] == value, (name, key)
        for key, check in HOST_SETTINGS.items():
            assert check(env[key]), (name, key, env[key])
            assert check(harness[key]), ("harness", key)
        # one metadata database for Airflow and the Celery results, as in the harness
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].split("@")[1] == \
               env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].split("@")[1]
    worker = service_environment(compose["services"]["airflow-worker"], filled_env)
    assert worker["DUMB_INIT_SETSID"] == "0"  # warm shutdown: a running task may finish


def test_airflow_init_writes_connections_and_variables_from_env(compose, filled_env):
    env = service_environment(compose["services"]["airflow-init"], filled_env)
    assert set(INIT_SETTINGS) <= set(env)
    assert env["CALPADS_STORE_URI"] == f"postgresql://airflow:{filled_env['POSTGRES_PASSWORD']}@postgres:5432/calpads_store"
    store_sql = (ROOT / "docker" / "postgres-init" / "calpads-store.sql").read_text()
    assert "CREATE DATABASE calpads_store" in store_sql
    assert mounts(compose["services"]["postgres"])["/docker-entrypoint-initdb.d"] == "./docker/postgres-init"
    script = INIT_SCRIPT.read_text()
    for setting in INIT_SETTINGS:
        assert setting in script, setting


def test_code_and_shared_folders_are_mounted_in_every_airflow_service(compose, filled_env):
    init_env = service_environment(compose["services"]["airflow-init"], filled_env)
    work_root = init_env["CALPADS_WORK_ROOT"]
    publish_root = init_env["CALPADS_PUBLISH_ROOT"].removeprefix("file://")
    for name in SERVICES:
        service = compose["services"][name]
        env = service_environment(service, filled_env)
        m = mounts(service, filled_env)
        assert m[env["AIRFLOW__CORE__DAGS_FOLDER"]] == "./dags", name
        assert m[env["AIRFLOW__CORE__PLUGINS_FOLDER"]] == "./plugins", name
        assert m[env["CALPADS_GX_ROOT"]] == "./great_expectations", name
        assert m["/opt/airflow/project/include"] == "./include", name
        # the stages' hand-over folder, the published files and the task logs are shared
        assert m[work_root] == "calpads-work", name
        assert m[publish_root] == filled_env["CALPADS_PUBLISH_DIR"], name
        assert m["/opt/airflow/logs"] == "airflow-logs", name
    api = compose["services"]["airflow-apiserver"]
    auth_file = service_environment(api, filled_env)["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    assert mounts(api)[str(Path(auth_file).parent)] == "airflow-auth"
    assert mounts(compose["services"]["airflow-init"])[str(Path(auth_file).parent)] == "airflow-auth"
    assert {"calpads-work", "airflow-logs", "airflow-auth", "postgres-db-volume"} <= set(compose["volumes"])


def test_env_example_names_every_setting_and_holds_no_secret():
    used = {m.group(1) for m in VAR.finditer(COMPOSE.read_text())}
    example = dotenv(ENV_EXAMPLE)
    assert used - set(example) == set(), "settings read by docker-compose.yaml but missing from .env.example"
    for secret in ("POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY",
                   "_AIRFLOW_WWW_USER_PASSWORD", "CALPADS_SIS_DB_URI", "CALPADS_SMTP_URI"):
        assert example[secret] == "", f"{secret} must be blank in .env.example"
        assert f"${{{secret}:?" in COMPOSE.read_text() or secret.startswith("CALPADS_"), secret


def test_image_is_the_pinned_airflow_with_the_project_installed(compose, filled_env):
    pin = re.search(r"^apache-airflow==([\d.]+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"ARG AIRFLOW_IMAGE=apache/airflow:{pin}-python3.11" in dockerfile
    assert dotenv(ENV_EXAMPLE)["AIRFLOW_IMAGE"] == f"apache/airflow:{pin}-python3.11"
    assert "pip install --no-cache-dir --no-deps -e /opt/airflow/project" in dockerfile
    # every folder the package install finds its packages in is in the image (plugins/ carries the
    # provider entry point that lists the SIS API connection types)
    import tomllib

    where = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["where"]
    assert "plugins" in where
    for folder in where:
        assert f"COPY --chown=airflow:0 {folder} /opt/airflow/project/{folder}" in dockerfile, folder
    runtime = (ROOT / "requirements.txt").read_text().split("# tests and tooling")[0]
    assert "apache-airflow-providers-celery==" in runtime and "asyncpg==" in runtime
    build = compose["x-airflow-common"]["build"]
    assert build["context"] == "."
