"""The emulator's fake GCS (``emulator/fakegcs``, the front included) has no import circles.

Every import counts, the ones inside functions too (a lazy import is still a circle); only
imports under ``if TYPE_CHECKING:`` are left out (they never run). No private name (``_x``) is
imported from another module.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "emulator.fakegcs"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, modules: set[str]) -> tuple[set[str], list[str]]:
    """(modules of ``PACKAGE`` imported at run time, private names imported)."""
    found: set[str] = set()
    private: list[str] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in modules:
                found.add(node.module)
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                if sub in modules:
                    found.add(sub)
                elif node.module.startswith(PACKAGE) and a.name.startswith("_"):
                    private.append(f"{node.module}.{a.name}")
        stack.extend(ast.iter_child_nodes(node))
    return found, private


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    files = sorted((ROOT / "emulator" / "fakegcs").rglob("*.py"))
    modules = {_module_name(f): f for f in files}
    graph: dict[str, set[str]] = {}
    private: list[str] = []
    for name, f in modules.items():
        deps, priv = _imports(ast.parse(f.read_text(encoding="utf-8")), set(modules))
        graph[name] = deps - {name}
        private += [f"{name}: {p}" for p in priv]
    return graph, private


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checker_sees_a_lazy_circle() -> None:
    a = ast.parse("def f():\n    from emulator.fakegcs.b import x\n")
    deps, _ = _imports(a, {"emulator.fakegcs.a", "emulator.fakegcs.b"})
    assert deps == {"emulator.fakegcs.b"}
    g = {"emulator.fakegcs.a": {"emulator.fakegcs.b"}, "emulator.fakegcs.b": {"emulator.fakegcs.a"}}
    assert _cycles(g) == [["emulator.fakegcs.a", "emulator.fakegcs.b"]]
    t = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import emulator.fakegcs.b\n"
    )
    assert _imports(t, {"emulator.fakegcs.b"})[0] == set()


def test_no_import_circles_in_the_fake_gcs() -> None:
    graph, _ = _graph()
    assert "emulator.fakegcs.front.connection" in graph
    assert _cycles(graph) == []


def test_no_private_names_imported_across_modules() -> None:
    _, private = _graph()
    assert private == []
