"""The layout keeps its promises: the documented map matches the tree, modules and functions stay small,
no cycles, and each layer imports only what its rule allows."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "exporter"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60  # of a body, docstring included (ARCHITECTURE.md: "no function over ~60")
WIRING = {"exporter.cli", "exporter.runtime", "exporter.demo"}  # the face and the assembly may know web/
KIT = {f"exporter.{name}" for name in ("backoff", "periodic", "yamlfile", "secretfile", "fdlimit", "watchdog", "logs")}
HTTP_LIBRARIES = {"requests", "aiohttp", "urllib3", "httpx", "http"}


def _modules() -> dict[str, Path]:
    """Dotted module name -> path, for every module of the package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """What ``path`` imports (lazy imports too): ``import a.b`` as ``a.b``; ``from a import b`` as ``a``,
    and as ``a.b`` too when that is a module of ours."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if f"{node.module}.{alias.name}" in modules)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _documented(doc: str) -> set[str]:
    """Module paths (``web/http.py``, ``store.py``) and folders named in the fenced ``exporter/`` map."""
    block = re.search(r"```\nexporter/\n(.*?)```", doc, re.S)
    assert block, "no exporter/ map in a fenced block"
    names, folder = set(), ""
    for line in block[1].splitlines():
        tokens = [t for t in line.split() if re.fullmatch(r"[a-z_]+(\.py|/)", t)]
        if line.startswith("  ") and not line.startswith("   "):  # a top-level entry resets the folder
            folder = tokens[0] if tokens and tokens[0].endswith("/") else ""
        for token in tokens:
            names.add(token if token.endswith("/") else folder + token)
    return names


def _tree() -> set[str]:
    names = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.name in ("__init__.py", "__main__.py"):
            continue
        if relative.parts[0] == "simulator":
            names.add("simulator/")  # the simulator has its own map in its package docstring
            continue
        if len(relative.parts) > 1:
            names.add(f"{relative.parts[0]}/")
        names.add(relative.as_posix())
    return names


@pytest.mark.parametrize("document", ["ARCHITECTURE.md", "README.md"])
def test_the_documented_package_map_matches_the_tree(document: str) -> None:
    documented = _documented((REPO / document).read_text(encoding="utf-8"))
    assert documented == _tree()


def test_no_product_module_is_over_the_size_limit() -> None:
    too_big = {name: len(path.read_text().splitlines()) for name, path in _modules().items()
               if len(path.read_text().splitlines()) > MAX_MODULE_LINES}
    assert too_big == {}


def test_there_are_no_import_cycles() -> None:
    modules = _modules()
    graph = {name: {edge for edge in _imports(path, modules) if edge in modules and edge != name}
             for name, path in modules.items()}
    cycles = []

    def visit(node: str, path: list[str], done: set[str]) -> None:
        for target in graph[node]:
            if target in path:
                cycles.append([*path[path.index(target):], target])
            elif target not in done:
                done.add(target)
                visit(target, [*path, target], done)

    for start in graph:
        visit(start, [start], set())
    assert cycles == []


def _breaks(name: str, imported: str) -> str | None:
    """The layer rule ``name`` breaks by importing ``imported``, if any."""
    product = _under(imported, "exporter")
    core = name.count(".") == 1 and not (PACKAGE / name.split(".")[1]).is_dir()  # a file directly under exporter/
    if core and name not in WIRING and _under(imported, "exporter.web"):
        return "core modules never import web/"
    if name in ("exporter.store", "exporter.lifecycle") and imported.split(".")[0] in HTTP_LIBRARIES:
        return "the store and the lifecycle know no HTTP"
    if _under(name, "exporter.tencentcloud") and product and not _under(imported, "exporter.tencentcloud") \
            and imported not in KIT:
        return "tencentcloud/ imports no product module (what an SDK would replace)"
    if name == "exporter.config" and _under(imported, "exporter.tencentcloud.client"):
        return "config takes the endpoint defaults from tencentcloud/, not the client"
    return None


def test_each_layer_imports_only_what_its_rule_allows() -> None:
    modules = _modules()
    broken = sorted(f"{name} imports {imported}: {rule}" for name, path in modules.items()
                    for imported in _imports(path, modules) if (rule := _breaks(name, imported)))
    assert broken == []


def test_the_layer_rules_catch_what_they_forbid() -> None:
    assert _breaks("exporter.collector", "exporter.web.http")
    assert _breaks("exporter.store", "requests") and _breaks("exporter.lifecycle", "aiohttp")
    assert _breaks("exporter.tencentcloud.errors", "exporter.errors")
    assert _breaks("exporter.config", "exporter.tencentcloud.client")
    assert not _breaks("exporter.runtime", "exporter.web.http") and not _breaks("exporter.web.routes", "exporter.web")
    assert not _breaks("exporter.web", "exporter.web.http")  # a package's __init__ is no core module
    assert not _breaks("exporter.tencentcloud.client", "exporter.backoff")


def test_no_function_is_over_the_length_limit() -> None:
    too_long = {}
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.body[0].lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long[f"{name}.{node.name}:{node.lineno}"] = length
    assert too_long == {}
