"""The package's shape: no import cycle among its modules, no long module without a reason.

The import graph is read from the source with ``ast`` (nothing is imported), and every import
counts, also those under ``if TYPE_CHECKING:`` or inside a function: a cycle that only type
checking sees is still two modules that cannot be understood one without the other. Importing a
submodule is an edge to that submodule, not to its package's ``__init__``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import orderguard

PACKAGE = Path(orderguard.__file__).parent
MAX_LINES = 500
REASON = re.compile(r"over 500 lines\b\W+\w+(\W+\w+){3,}", re.IGNORECASE)
"""A module over :data:`MAX_LINES` says why in its docstring: "Over 500 lines: <reason>"."""


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["orderguard", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    deps: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            deps.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    deps.add(f"{base}.{alias.name}")  # a submodule
                elif base in modules:
                    deps.add(base)  # a name from a module
    deps.discard(name)
    return deps


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for dep in edges:
                if dep not in index:
                    index[dep] = low[dep] = counter
                    counter += 1
                    stack.append(dep)
                    on_stack.add(dep)
                    work.append((dep, iter(sorted(graph[dep]))))
                    break
                if dep in on_stack:
                    low[node] = min(low[node], index[dep])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_package_has_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert found == [], "import cycles (TYPE_CHECKING imports included):\n" + "\n".join(
        " <-> ".join(component) for component in found
    )


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check above could not pass by finding nothing anywhere."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_type_checking_and_relative_imports(tmp_path: Path) -> None:
    """An import under ``if TYPE_CHECKING:`` is an edge like any other."""
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from orderguard.orders.manager import OrderManager\n"
        "from . import clock\n",
        encoding="utf-8",
    )
    modules = _modules()
    assert _imports("orderguard.m", source, modules) == {
        "orderguard.orders.manager",
        "orderguard.clock",
    }
    assert "orderguard.orders.manager" in modules


def test_a_long_module_says_why_in_its_docstring() -> None:
    unexplained = []
    for name, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n") + (not text.endswith("\n"))
        if lines <= MAX_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if not REASON.search(docstring):
            unexplained.append(f"{name}: {lines} lines")
    assert unexplained == [], (
        f"modules over {MAX_LINES} lines without 'Over 500 lines: <reason>' in their docstring "
        "(say why the module is one piece, or split it):\n" + "\n".join(unexplained)
    )


def test_the_reason_must_say_something() -> None:
    assert REASON.search("Over 500 lines: the facade of the whole seed API.")
    assert not REASON.search("Over 500 lines.")


def test_an_orders_subpackage_lists_its_modules_and_re_exports_nothing() -> None:
    """The layout convention (docs/architecture.md): a subpackage of ``orders`` is a docstring
    naming each of its modules, and nothing else, so importing one module never imports its
    siblings and the package itself stays out of the import graph."""
    orders = PACKAGE / "orders"
    subpackages = sorted(init.parent for init in orders.glob("*/__init__.py"))
    assert {path.name for path in subpackages} >= {"bracket", "feed", "oco", "positions", "send"}
    for package in subpackages:
        tree = ast.parse((package / "__init__.py").read_text(encoding="utf-8"))
        docstring = ast.get_docstring(tree) or ""
        assert len(tree.body) == 1, f"{package.name}/__init__.py holds more than its docstring"
        assert "internal" in docstring.lower()
        for module in sorted(package.glob("*.py")):
            if module.name != "__init__.py":
                dotted = f"orderguard.orders.{package.name}.{module.stem}"
                assert dotted in docstring, f"{package.name}/__init__.py does not list {dotted}"
