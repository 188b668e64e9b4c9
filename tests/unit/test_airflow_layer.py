"""The shape of the Airflow layer (docs/architecture.md, "The Airflow layer"): imports run one way, from
plugins/calpads_airflow and dags/ into the domain package include/calpads, never back; DAG files are thin
wiring; no function of the Airflow layer is longer than a screen."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

DOMAIN = ROOT / "include" / "calpads"
AIRFLOW_LAYER = [*sorted((ROOT / "dags").glob("*.py")), *sorted((ROOT / "plugins").rglob("*.py"))]
MAX_FUNCTION_LINES = 60
AIRFLOW_PACKAGES = ("airflow", "calpads_airflow")
# Domain modules that may import Airflow, each with the reason. Keep it short: a new entry needs one.
ALLOWED_AIRFLOW_IMPORTS = {
    "sources/api_sources.py": "an API source reads the vendor's credentials from the Airflow connection when "
                              "a stage pulls (get_connection); the connection types are the hooks' "
                              "(plugins/calpads_airflow/hooks)",
}


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import, at module level or inside a function (the layer imports lazily)."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def is_airflow(module: str) -> bool:
    return module.split(".")[0] in AIRFLOW_PACKAGES


def airflow_imports_of_domain() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(DOMAIN.rglob("*.py")):
        hits = [f"line {line}: {mod}" for line, mod in imported_modules(ast.parse(path.read_text())) if is_airflow(mod)]
        if hits:
            found[path.relative_to(DOMAIN).as_posix()] = hits
    return found


def test_the_domain_package_imports_nothing_from_airflow_except_the_allow_list():
    found = airflow_imports_of_domain()
    unexpected = {path: hits for path, hits in found.items() if path not in ALLOWED_AIRFLOW_IMPORTS}
    assert not unexpected, (f"include/calpads imports Airflow (move the code to plugins/calpads_airflow, or pass "
                            f"the engine/connection in): {unexpected}")


def test_the_allow_list_has_no_stale_entries():
    found = airflow_imports_of_domain()
    stale = sorted(set(ALLOWED_AIRFLOW_IMPORTS) - set(found))
    assert not stale, f"allow-listed modules that no longer import Airflow: drop them from the list: {stale}"


def test_the_import_walk_sees_imports_inside_functions():
    tree = ast.parse("def f():\n    from airflow.sdk import Variable\n    import calpads_airflow.runtime\n")
    assert [m for _, m in imported_modules(tree) if is_airflow(m)] == ["airflow.sdk", "calpads_airflow.runtime"]


def test_dag_files_are_thin_wiring_of_the_factories():
    for path in sorted((ROOT / "dags").glob("*.py")):
        modules = [mod for _, mod in imported_modules(ast.parse(path.read_text()))]
        assert modules and all(m.startswith("calpads_airflow.factories.") for m in modules), (path.name, modules)
        functions = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)]
        assert not functions, f"{path.name}: DAG files only call a factory; put {functions[0].name} in plugins"


def long_functions(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                out.append(f"{path.name}:{node.lineno} {node.name} ({lines} lines)")
    return out


def test_no_function_of_the_airflow_layer_is_longer_than_a_screen():
    assert any(p.name == "file_dag.py" for p in AIRFLOW_LAYER)   # the factories are walked
    too_long = [hit for path in AIRFLOW_LAYER for hit in long_functions(path)]
    assert not too_long, f"split these into task methods or helpers (max {MAX_FUNCTION_LINES} lines): {too_long}"


def test_the_length_check_counts_nested_functions_and_their_outer_function(tmp_path):
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    sample = tmp_path / "sample.py"
    sample.write_text(f"def outer():\n    def inner():\n{body}\n    return inner\n")
    assert [h.split()[1] for h in long_functions(sample)] == ["outer", "inner"]
