"""The layout keeps its promises: the documented map matches the tree, modules stay small, no cycles."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "exporter"
MAX_MODULE_LINES = 500


def _modules() -> dict[str, Path]:
    """Dotted module name -> path, for every module of the package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


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
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("exporter"):
                edges.add(node.module)
                edges.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name.startswith("exporter"))
        graph[name] = {edge for edge in edges if edge in modules and edge != name}
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
