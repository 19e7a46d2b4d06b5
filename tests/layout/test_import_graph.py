"""The project's import graph and function sizes, computed from the source (AST, nothing imported).

Invariants checked (issue 16):

- no import circle among ``gcs_hook``, ``emulator`` and ``benchmarks``, counting module-level and
  function-level imports (``from pkg import name`` is an edge to ``pkg.name`` when that is a
  module, else to ``pkg``), and typing-only ones (``if TYPE_CHECKING:``) too: a circle for the type
  checker is still two modules that each need the other;
- no private name (``_x``) imported from another module;
- ``emulator`` never imports ``benchmarks`` or ``gcs_hook.cli`` (imports go one way);
- no function body longer than 120 lines, except the compiled (``@njit``) kernels.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gcs_hook", "emulator", "benchmarks")
MAX_BODY_LINES = 120


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import that runs (module level, inside functions, under ``if``); imports under
    ``if TYPE_CHECKING:`` are annotations only, never executed, and are not edges."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if _is_type_checking(node):
            todo.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        todo.extend(ast.iter_child_nodes(node))


def _base(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_pkg = MODULES[module].name == "__init__.py"
    parts = module.split(".")
    keep = len(parts) - node.level + (1 if is_pkg else 0)
    base = ".".join(parts[:keep])
    return f"{base}.{node.module}" if node.module else base


def imports_of(module: str) -> Iterator[tuple[str, str, int]]:
    """(imported project module, imported name or "", line) for each import in ``module``."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    yield alias.name, "", node.lineno
            continue
        base = _base(module, node)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            if sub in MODULES:
                yield sub, "", node.lineno
            elif base in MODULES:
                yield base, alias.name, node.lineno


def import_graph() -> dict[str, set[str]]:
    return {m: {t for t, _, _ in imports_of(m) if t != m} for m in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def test_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_checker_sees_lazy_imports_and_skips_type_checking_ones():
    """An import inside a function runs (an edge); one under ``if TYPE_CHECKING:`` never does."""
    lazy = ast.parse("def f():\n    from emulator.fakegcs.b import x\n")
    assert [n.module for n in _import_nodes(lazy)] == ["emulator.fakegcs.b"]
    typed = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import emulator.x\n"
    )
    assert [n.module for n in _import_nodes(typed)] == ["typing"]


def test_no_import_circles():
    found = cycles(import_graph())
    assert found == [], "import circles:\n" + "\n".join(" ↔ ".join(c) for c in found)


def test_no_private_name_imported_across_modules():
    bad = [
        f"{MODULES[m].relative_to(ROOT)}:{line}: {name} from {target}"
        for m in MODULES
        for target, name, line in imports_of(m)
        if name.startswith("_") and not name.startswith("__")
    ]
    assert bad == []


def test_emulator_never_imports_benchmarks_or_the_cli():
    bad = [
        f"{m} → {t}"
        for m, targets in import_graph().items()
        if m.startswith("emulator")
        for t in targets
        if t.startswith(("benchmarks", "gcs_hook.cli"))
    ]
    assert bad == []


def _is_kernel(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for dec in fn.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name == "njit":
            return True
    return False


def long_functions(max_lines: int = MAX_BODY_LINES) -> list[str]:
    """``path:line name (N lines)`` for every function whose body spans more than ``max_lines``."""
    out = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or _is_kernel(node):
                continue
            span = node.body[-1].end_lineno - node.body[0].lineno + 1
            if span > max_lines:
                out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({span} lines)")
    return out


def test_no_function_body_over_120_lines():
    assert long_functions() == []
