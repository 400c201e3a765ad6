"""The cache's integrity: a layer is only used as what its record says it is.

Each record (layer.json) holds the sha256 of the layer's image and of the exact parent bytes
it was built on. A layer is corrupt when its image no longer hashes to its record; an overlay
is stale when its parent now has other bytes (the parent was deleted and rebuilt: same key,
other bytes), and an overlay on other bytes is garbage. Both are checked before a layer is
used, and `invoke cache.verify` checks every layer, its backing chain included.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

from imagefactory.engine.cache import LayerCache
from imagefactory.errors import ToolError
from imagefactory.util.fsutil import sha256_file
from imagefactory.util.tools import run


@dataclass(frozen=True)
class LayerCheck:
    key: str
    name: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def image_problem(cache: LayerCache, key: str) -> str | None:
    """Why the layer's image is not what its record says (None: it is)."""
    facts = cache.facts(key)
    image = cache.entry(key) / str(facts.get("image", ""))
    if not image.is_file():
        return f"its image {image.name} is missing"
    recorded = facts.get("sha256")
    actual = sha256_file(image)
    if recorded != actual:
        return f"its image hashes to {actual[:12]}, its record says {str(recorded)[:12]}"
    return None


def check_layer(cache: LayerCache, key: str) -> LayerCheck:
    """Image bytes, parent record and backing chain of one cached layer."""
    facts = cache.facts(key)
    problems = []
    if (found := image_problem(cache, key)) is not None:
        problems.append(found)
    parent = facts.get("parent")
    overlay = facts.get("image") != "image.qcow2" and parent is not None
    if overlay and not cache.has(str(parent)):
        problems.append(f"its parent {str(parent)[:12]} is not in the cache")
    elif overlay and not cache.built_on(key, str(parent)):
        problems.append(f"it was built on other bytes of its parent {str(parent)[:12]}")
    elif overlay and not problems:
        problems += _backing_problems(cache, key, str(parent))
    return LayerCheck(key, str(facts.get("name", "?")), tuple(problems))


def _backing_problems(cache: LayerCache, key: str, parent: str) -> list[str]:
    try:
        info = json.loads(run(["qemu-img", "info", "--output=json", str(cache.image(key))]).stdout)
    except ToolError as err:
        return [f"qemu-img cannot read it: {err}"]
    backing = info.get("full-backing-filename") or info.get("backing-filename")
    if backing is None:
        return ["it has no backing file, but its record names a parent"]
    found = (cache.image(key).parent / backing).resolve()
    if found != cache.image(parent).resolve():
        return [f"its backing file is {backing}, not its parent's image"]
    return []


def descendants(cache: LayerCache, key: str) -> list[str]:
    """Every cached layer built on `key`, directly or not (children before grandchildren)."""
    children: dict[str, list[str]] = {}
    for k in cache.layer_keys():
        parent = cache.facts(k).get("parent")
        if parent is not None:
            children.setdefault(str(parent), []).append(k)
    out: list[str] = []
    todo = list(children.get(key, []))
    while todo:
        k = todo.pop(0)
        if k not in out:
            out.append(k)
            todo += children.get(k, [])
    return out


def evict(cache: LayerCache, key: str, *, holding_lock: bool = False) -> list[str]:
    """Remove `key` and everything built on it, each under its lock (`holding_lock`: the
    caller holds the lock of `key` itself; flock would wait on it); the removed keys."""
    removed = []
    for k in [key, *descendants(cache, key)]:
        with contextlib.nullcontext() if holding_lock and k == key else cache.lock(k):
            if cache.entry(k).exists():
                cache.remove(k)
                removed.append(k)
    return removed


def verify_all(cache: LayerCache) -> list[LayerCheck]:
    return [check_layer(cache, key) for key in cache.layer_keys()]


def describe(checks: list[LayerCheck], root: Path) -> str:
    lines = [f"{len(checks)} layers in {root}"]
    for c in checks:
        state = "ok" if c.ok else "BAD: " + "; ".join(c.problems)
        lines.append(f"  {c.name:<24} {c.key[:12]}  {state}")
    bad = [c for c in checks if not c.ok]
    if bad:
        lines.append(
            f"{len(bad)} bad; remove each with what is built on it: invoke cache.evict "
            f"--layer=KEY (a build then makes them again)"
        )
    return "\n".join(lines)
