"""The layers, read from every module's imports (ast, imports inside functions included).

kiosk/core/ stands on nothing above it; the device's uploader (sync/) and the reference upstream
(sync/upstream/) share only sync/protocol.py; no module imports one that imports it back. Imports
under ``if TYPE_CHECKING:`` are left out: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("kiosk", "scanner", "beacon", "sync")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:``."""
    out, todo = [], [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        out.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return out


def imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports (``from a import b`` counts a.b when b is a module)."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    found = set()
    for target in names:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imported(name, path, modules) for name, path in modules.items()}


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "kiosk.core.errors" in graph["kiosk.core.privacy"]  # imported inside read_key
    assert "kiosk.pipeline" in graph["kiosk.commands"]


def test_the_core_imports_nothing_above_it():
    wrong = {name: sorted(m for m in deps if m != "kiosk" and not m.startswith("kiosk.core"))
             for name, deps in import_graph().items() if name.startswith("kiosk.core")}
    assert {name: deps for name, deps in wrong.items() if deps} == {}
    assert len(wrong) >= 12


def test_uploader_and_upstream_share_only_the_protocol():
    graph = import_graph()
    upstream = {n for n in graph if n.startswith("sync.upstream")}
    device = {n for n in graph if n.startswith("sync.") and n not in upstream}
    assert "sync.client" in device and "sync.upstream.server" in upstream
    crossing = {n: sorted(m for m in graph[n] if m in upstream) for n in device}
    assert {n: m for n, m in crossing.items() if m} == {}
    shared = {n: sorted(m for m in graph[n] if m in device and m != "sync.protocol") for n in upstream}
    assert {n: m for n, m in shared.items() if m} == {}


def test_no_import_cycle():
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert cycles == []
