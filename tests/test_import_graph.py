"""The modules of ``envs`` import each other without a cycle, and only at module level.

The graph is read from the source with ``ast`` (every ``import`` statement, wherever it is, including
``if TYPE_CHECKING:`` blocks and function bodies), so a cycle is caught even when a function-level import
would hide it at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import envs

ENVS = Path(envs.__file__).parent
PACKAGE = "envs"  # the node of envs/__init__.py


def _modules() -> dict[str, Path]:
    return {(PACKAGE if p.stem == "__init__" else p.stem): p for p in sorted(ENVS.glob("*.py"))}


def _targets(node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    """The envs modules an import statement needs: ``envs.x`` for ``import envs.x``, ``from envs.x import y``
    and ``from envs import x`` (x a module); the package (envs/__init__.py) for a name it defines."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        module = PACKAGE if node.level else node.module or ""  # ``from . import x`` and ``from .x import y``
        if node.level and node.module:
            module = f"{PACKAGE}.{node.module}"
        names = [f"{module}.{a.name}" if module == PACKAGE else module for a in node.names]
    out = set()
    for name in names:
        parts = name.split(".")
        if parts[0] == PACKAGE:
            out.add(parts[1] if len(parts) > 1 and parts[1] in modules else PACKAGE)
    return out


def _imports(path: Path, modules: dict[str, Path]) -> list[tuple[str, bool]]:
    """``(module, at module level)`` for each import of an envs module in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.extend((t, top) for t in _targets(child, modules))
            nested = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda)
            visit(child, top and not nested)

    visit(tree, True)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {t for t, _ in _imports(path, modules)} - {name}
        for name, path in modules.items()  # ``from envs import x`` inside envs/__init__ is no self-edge
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := dfs(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := dfs(node)):
            return cycle
    return None


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_reads_every_kind_of_import() -> None:
    modules = {"scenario": Path(), "loader": Path(), "spec": Path(), PACKAGE: Path()}
    src = (
        "from envs import loader\nfrom envs import spec as s\nimport envs.scenario\nfrom envs import Scenario\n"
        "from . import spec\nimport numpy\ndef f():\n    from envs.loader import x\n"
    )
    tree = ast.parse(src)
    got = [
        t for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom) for t in _targets(node, modules)
    ]
    assert sorted(got) == sorted(["loader", "spec", "scenario", PACKAGE, "spec", "loader"])


def test_envs_modules_import_each_other_without_a_cycle() -> None:
    graph = import_graph()
    assert {"scenario", "loader", "costs", "instance", "params", "spec", "workload"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in envs: " + " -> ".join(cycle or [])


def test_the_problem_definition_layers() -> None:
    # params and spec are the leaves; instance needs only params; the scenario needs the loader, never
    # the reverse (the loader returns the scenario's fields, Scenario.from_spec builds it).
    graph = import_graph()
    assert graph["params"] == set() and graph["spec"] == set()
    assert graph["instance"] == {"params"}
    assert "scenario" not in graph["loader"] and "loader" in graph["scenario"]


def test_envs_imports_are_at_module_level() -> None:
    modules = _modules()
    nested = sorted(
        f"{name} imports {t} inside a function or class"
        for name, path in modules.items()
        for t, top in _imports(path, modules)
        if not top
    )
    assert nested == []
