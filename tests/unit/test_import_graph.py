"""The package's import graph: no module imports, directly or through others, itself."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "imagefactory"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every import anywhere in a module (top level, in functions, under TYPE_CHECKING)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import sub` imports the submodule sub when there is one
                subs = [f"{node.module}.{a.name}" for a in node.names]
                targets = [s for s in subs if s in modules] or [node.module]
            graph[name].update(t for t in targets if t in modules and t != name)
    for name in modules:  # importing a.b.c runs a/__init__ and a/b/__init__ first
        for target in list(graph[name]):
            parts = target.split(".")
            graph[name].update(
                parent
                for parent in (".".join(parts[:i]) for i in range(2, len(parts)))
                if parent in modules and parent != name and not name.startswith(parent + ".")
            )
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_the_graph_is_read() -> None:
    """The graph sees the engine's real edges (a reader that finds nothing proves nothing)."""
    graph = import_graph()
    assert "imagefactory.engine.recipes" in graph["imagefactory.engine.plan"]
    assert "imagefactory.sources.install" in graph["imagefactory.config.validate"]
    assert "imagefactory.config" in graph["imagefactory.engine.recipes"]  # its __init__ too
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]


def test_no_import_cycle() -> None:
    """No cycle, counting imports inside functions and under TYPE_CHECKING."""
    assert find_cycle(import_graph()) == []
