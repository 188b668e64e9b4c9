"""The CALPADS page: a FastAPI app the api-server mounts at /calpads (calpads_ui_plugin).

Every route needs the user Airflow's own auth manager recognises (``get_user``: the UI's session cookie or an
API bearer token; anonymous requests get 401 and nothing else), and shows or serves only what the user may read
(``is_authorized_dag`` on the file's DAG: a file of ``<year>/SPRG/`` is readable by who may read calpads_sprg's
runs; ``integration/`` by who may read integration_health's). Files are served read-only from the publish root,
never listed beyond what the page links, never from a hidden (temporary) folder.
"""

from __future__ import annotations

import mimetypes
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import pendulum
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from calpads.leas import LeaConfig, LeaConfigError, page_files_path
from calpads.readiness import FileReadiness, academic_years, file_readiness, latest_by_year

TEMPLATES = Environment(loader=FileSystemLoader(str(Path(__file__).parent / "templates")),
                        autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
HEALTH_DAG = "integration_health"
PRIVATE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}   # student data: never cached
ALL_LEAS_AT_ONCE = 40    # LEAs shown together without picking one (a county office's); more: pick one


def can_read(user: Any, dag_id: str) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    return get_auth_manager().is_authorized_dag(method="GET", access_entity=DagAccessEntity.RUN,
                                                details=DagDetails(id=dag_id), user=user)


def _tz() -> Any:
    from airflow.configuration import conf

    return pendulum.timezone(conf.get("calpads", "timezone", fallback="America/Los_Angeles"))


def _local(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        return pendulum.instance(value).in_timezone(_tz()).format("YYYY-MM-DD HH:mm zz")
    return "" if value is None else str(value)


TEMPLATES.filters["local_time"] = _local
TEMPLATES.filters["q"] = lambda s: quote(str(s), safe="")


def _page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(name).render(**context), status_code=status_code, headers=PRIVATE)


def _rel(root: Any, path: Any) -> str:
    return str(PurePosixPath(str(path)).relative_to(PurePosixPath(str(root))))


def readiness_rows(user: Any, today: date, lea: LeaConfig | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per academic year and file the user may read: the latest run's readiness and its context.
    ``lea``: one LEA of the LEA file, read from its own publish folder, file DAGs and history rows only."""
    from calpads_airflow.ui import sources

    root = sources.publish_root(lea)
    dags = {rt: dag_id for rt, dag_id in sources.file_dags(lea).items() if can_read(user, dag_id)}
    runs = {rt: sources.airflow_runs(dag_id) for rt, dag_id in dags.items()}
    found, never = latest_by_year(root, runs)
    files = page_files_path(lea.code if lea else None)
    rows = [_row(root, r, dags[r.record_type], runs[r.record_type],
                 sources.last_saved(r.record_type, r.academic_year, lea),
                 sources.next_window(r.record_type, r.academic_year, today), files=files) for r in found]
    return rows, never


def lea_sections(user: Any, today: date, leas: tuple[LeaConfig, ...], pick: str | None) -> dict[str, Any]:
    """The page of a deployment with an LEA file: the LEAs the user may read (any of their file DAGs), and one
    section per LEA (``pick``: that LEA's alone), each from its own folder, DAGs and history. More than
    ALL_LEAS_AT_ONCE LEAs and none picked: the list of LEAs to pick from, no section."""
    from calpads_airflow.ui import sources

    readable = [lea for lea in leas if any(can_read(user, d) for d in sources.file_dags(lea).values())]
    if pick:
        shown = [lea for lea in readable if lea.code == pick]
    else:
        shown = readable if len(readable) <= ALL_LEAS_AT_ONCE else []
    sections = []
    for lea in shown:
        rows, never = readiness_rows(user, today, lea)
        sections.append({"lea": lea, "rows": rows, "never": never})
    return {"choices": readable, "sections": sections, "pick": pick or "",
            "unknown": bool(pick) and not shown, "too_many": not pick and len(readable) > ALL_LEAS_AT_ONCE}


def _row(root: Any, r: FileReadiness, dag_id: str, runs: dict[str, Any], saved: dict[str, Any] | None,
         window: dict[str, Any] | None, overview: bool = True, files: str = "files") -> dict[str, Any]:
    folder = _rel(root, r.folder) if r.folder is not None else None
    run = runs.get(r.folder.name) if r.folder is not None else None
    return {"r": r, "dag_id": dag_id, "folder": folder, "run": run, "saved": saved, "window": window,
            "overview": overview, "files": files}


def create_app() -> FastAPI:
    app = FastAPI(title="CALPADS readiness", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request, user: GetUserDep, lea: str | None = None) -> HTMLResponse:
        from calpads.deadlines.watch import latest_health
        from calpads_airflow.ui import sources

        today = datetime.now(_tz()).date()
        page = {"base": request.scope.get("root_path", ""), "today": today, "ui": _ui_base(request)}
        try:
            leas = sources.leas()
        except LeaConfigError as exc:   # the DAG files show the same problems as import errors
            return _page("overview.html", **page, rows=[], never=[], lea_file_error=str(exc), status_code=500)
        if not leas:   # one LEA, no LEA file: the page as it always was
            rows, never = readiness_rows(user, today)
            health = latest_health(sources.publish_root()) if can_read(user, HEALTH_DAG) else None
            return _page("overview.html", **page, rows=rows, never=never, health=health)
        # integration_health serves the single LEA only (not built with an LEA file): no section for it
        by_lea = lea_sections(user, today, leas, (lea or "").strip() or None)
        return _page("overview.html", **page, by_lea=by_lea, status_code=404 if by_lea["unknown"] else 200)

    @app.get("/run/{dag_id}/{run_id}", response_class=HTMLResponse)
    def run_view(dag_id: str, run_id: str, request: Request, user: GetUserDep) -> HTMLResponse:
        if not can_read(user, dag_id):
            raise HTTPException(403, "Not allowed to read this DAG's runs")
        return _run_page(dag_id, run_id, request)

    @app.get("/files/{rel:path}")
    def published_file(rel: str, user: GetUserDep) -> Response:
        return _published_file(rel, user)

    @app.get("/lea-{code}/{rel:path}")
    def lea_published_file(code: str, rel: str, user: GetUserDep) -> Response:
        """A listed LEA's published file (its own publish folder, its own DAGs' permissions)."""
        return _published_file(rel, user, _listed_lea(code))

    return app


def _listed_lea(code: str) -> LeaConfig:
    """The LEA file's LEA with this code; 404 for any other (and without an LEA file)."""
    from calpads_airflow.ui import sources

    found = next((lea for lea in sources.leas() if lea.code == code), None)
    if found is None:
        raise HTTPException(404, "Not found")
    return found


def _file_dag(dag_id: str) -> tuple[LeaConfig | None, str] | None:
    """(LEA, record type) of a CALPADS file DAG (LEA None: the single LEA's), None for any other DAG."""
    from calpads_airflow.ui import sources

    for lea in sources.leas() or (None,):
        for rt, d in sources.file_dags(lea).items():
            if d == dag_id:
                return lea, rt
    return None


def _run_page(dag_id: str, run_id: str, request: Request) -> HTMLResponse:
    """The CALPADS tab of a DAG run: that run's verdict, files and held-back records."""
    from calpads_airflow.ui import sources

    found = _file_dag(dag_id)
    base = request.scope.get("root_path", "")
    if found is None:
        return _page("run.html", base=base, row=None, dag_id=dag_id, run_id=run_id, ui=_ui_base(request))
    lea, rt = found
    root = sources.publish_root(lea)
    runs = sources.airflow_runs(dag_id)
    name = run_id.replace("/", "_")
    row = None
    for year in academic_years(root):
        if (root / year / rt / name).exists():
            r = file_readiness(root, year, rt, runs, run_folder=name)
            row = _row(root, r, dag_id, runs, None, None, overview=False,
                       files=page_files_path(lea.code if lea else None))
            break
    return _page("run.html", base=base, row=row, dag_id=dag_id, run_id=run_id, run=runs.get(name), lea=lea,
                 ui=_ui_base(request))


def _published_file(rel: str, user: Any, lea: LeaConfig | None = None) -> Response:
    """A file under the publish root (``lea``: that LEA's publish folder), read-only, for a user who may read
    its DAG's runs. With an LEA file, ``files/`` serves nothing: each LEA's files are under ``lea-<code>/``."""
    from calpads_airflow.ui import sources

    parts = rel.split("/")
    if len(parts) < 2 or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise HTTPException(404, "Not found")
    if lea is None and sources.leas():
        raise HTTPException(404, "Not found")
    if parts[0] == "integration" and lea is None:
        dag_id = HEALTH_DAG
    else:
        dag_id = sources.file_dags(lea).get(parts[1].upper(), "")
        if not dag_id or len(parts) < 4:
            raise HTTPException(404, "Not found")
    if not can_read(user, dag_id):
        raise HTTPException(403, "Not allowed to read this DAG's files")
    root = sources.publish_root(lea)
    target = root.joinpath(*parts)
    if isinstance(root, Path):
        real = target.resolve()
        if not real.is_relative_to(root.resolve()) or not real.is_file():
            raise HTTPException(404, "Not found")
        return FileResponse(real, media_type=_media_type(real.name), headers=_headers(real.name))
    if not target.is_file():
        raise HTTPException(404, "Not found")
    return Response(target.read_bytes(), media_type=_media_type(target.name), headers=_headers(target.name))


def _media_type(name: str) -> str:
    if name.endswith(".txt"):
        return "text/plain; charset=utf-8"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _headers(name: str) -> dict[str, str]:
    """Extract files and CSVs download under their own name; the reports open in the browser."""
    if name.endswith((".txt", ".csv")):
        return {**PRIVATE, "Content-Disposition": f'attachment; filename="{name}"'}
    return dict(PRIVATE)


def _ui_base(request: Request) -> str:
    """The Airflow UI's own path (links to DAG runs): the path of the api-server's base URL, same origin."""
    from urllib.parse import urlparse

    from airflow.configuration import conf

    root_path = request.scope.get("root_path", "")
    base = urlparse(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
    return base or root_path.removesuffix("/calpads")


app = create_app()
