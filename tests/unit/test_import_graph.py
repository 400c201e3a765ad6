"""The package's import graph: no module imports, directly or through others, itself; every
import runs down the declared layer order (or stays inside its own package); code outside the
store uses it through its front door."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "imagefactory"

# The layers, bottom first: a module may import its own package and the packages of lower
# layers, never one of its own layer or above (an arrow running back up).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("choices", "util", "variables"),
    ("guest", "hardening", "store"),
    ("sources", "report"),
    ("config",),
    ("engine", "fleet", "verify", "doctor"),
    ("nightly",),
    ("commands",),
)
# What code outside imagefactory.store may import of it: its front door and its settings.
STORE_FRONT_DOOR = {"imagefactory.store", "imagefactory.store.api", "imagefactory.store.settings"}


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


def top(module: str) -> str:
    """The package (or top-level module) of `module`, as named in LAYERS."""
    return module.split(".")[1] if "." in module else module


def layer_of(module: str) -> int:
    name = top(module)
    found = [i for i, layer in enumerate(LAYERS) if name in layer]
    assert found, f"{module}: its package {name!r} is in no layer of LAYERS: add it"
    return found[0]


def upward_arrows(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a package of the same or a higher layer than the importer's own."""
    return sorted(
        f"{a} -> {b} (layer {layer_of(a)} -> {layer_of(b)})"
        for a, targets in graph.items()
        if a != "imagefactory"
        for b in targets
        if top(a) != top(b) and layer_of(b) >= layer_of(a)
    )


def past_the_front_door(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{a} -> {b}"
        for a, targets in graph.items()
        if top(a) != "store"
        for b in targets
        if top(b) == "store" and b not in STORE_FRONT_DOOR
    )


def test_the_graph_is_read() -> None:
    """The graph sees the engine's real edges (a reader that finds nothing proves nothing)."""
    graph = import_graph()
    assert "imagefactory.engine.recipes" in graph["imagefactory.engine.plan"]
    assert "imagefactory.sources.install" in graph["imagefactory.config.validate"]
    assert "imagefactory.store.api" in graph["imagefactory.engine.remote"]
    assert "imagefactory.config" in graph["imagefactory.engine.recipes"]  # its __init__ too
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    # the rules see an arrow back up and a reach past the front door
    back_up = {"imagefactory.store.api": {"imagefactory.report.published"}}
    assert upward_arrows(back_up) == [
        "imagefactory.store.api -> imagefactory.report.published (layer 2 -> 3)"
    ]
    assert upward_arrows({"imagefactory.engine.plan": {"imagefactory.fleet.model"}})  # same layer
    assert past_the_front_door({"imagefactory.engine.remote": {"imagefactory.store.pull"}})


def test_no_import_cycle() -> None:
    """No cycle, counting imports inside functions and under TYPE_CHECKING."""
    assert find_cycle(import_graph()) == []


def test_imports_run_down_the_layers() -> None:
    """No arrow runs back up: each package imports only its own modules and lower layers."""
    assert upward_arrows(import_graph()) == []


def test_the_store_is_used_through_its_front_door() -> None:
    assert past_the_front_door(import_graph()) == []
