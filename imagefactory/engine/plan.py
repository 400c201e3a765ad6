"""Plan a family build: each layer's recipe, inputs, key, and whether the cache has it.

Keys never depend on the cache; the cache only decides which layers are reused. A build
walks back from the family's last layer to the newest usable cached one and builds the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from imagefactory import variables
from imagefactory.choices import Firmware
from imagefactory.config import Config, Family, LayerDef
from imagefactory.engine.cache import LayerCache, on_parent_bytes
from imagefactory.engine.keys import Inputs, explain, layer_key
from imagefactory.engine.recipes import LayerRecipe, recipe_of
from imagefactory.errors import Problem
from imagefactory.guest.credential import BuildCredential
from imagefactory.sources.repostate import RepoStates


@dataclass(frozen=True)
class Step:
    index: int
    recipe: LayerRecipe
    key: str
    inputs: Inputs
    cached: bool
    reasons: tuple[str, ...]  # why it has to be built; empty when reused
    missing: tuple[Problem, ...] = ()  # required variables without a value: cannot be built
    in_store: bool = False  # the remote layer cache has a record for this key
    fetch: bool = False  # to be fetched from the remote layer cache instead of built

    @property
    def layer(self) -> LayerDef:
        return self.recipe.layer

    @property
    def short(self) -> str:
        return self.key[:12]


@dataclass(frozen=True)
class Plan:
    family: Family
    steps: tuple[Step, ...]

    @property
    def todo(self) -> tuple[Step, ...]:
        """Layers to build: everything after the newest layer that is cached or fetched."""
        for step in reversed(self.steps):
            if step.cached or step.fetch:
                return self.steps[step.index + 1 :]
        return self.steps

    @property
    def fetches(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.fetch)

    @property
    def final(self) -> Step:
        return self.steps[-1]

    @property
    def firmware(self) -> Firmware:
        """How every layer and the sealed image boot: as the root layer decides."""
        return self.steps[0].recipe.firmware

    def parent(self, step: Step) -> Step | None:
        return self.steps[step.index - 1] if step.index else None

    def label(self, step: Step) -> str:
        """How progress names a layer of this build: `[2/5] harden 1a2b3c4d5e6f`."""
        return f"[{step.index + 1}/{len(self.steps)}] {step.layer.name} {step.short}"

    def fits_parent(self, step: Step, recorded: object, sha256_of: Callable[[str], object]) -> bool:
        """`step`'s layer, whose record says it was built on parent bytes `recorded`, may be
        used on the parent `sha256_of` describes (see fits_parent)."""
        return fits_parent(step, self.parent(step), recorded, sha256_of)


def fits_parent(
    step: Step, parent: Step | None, recorded: object, sha256_of: Callable[[str], object]
) -> bool:
    """A sealed image and a root layer stand alone; an overlay fits only on the exact parent
    bytes it was built on (the parent-bytes rule, cache.on_parent_bytes): `recorded` is what
    its record says, `sha256_of(parent key)` the bytes of the parent where it would be used
    (this host's cache or the store; None: no usable parent there)."""
    if step.recipe.kind.standalone or parent is None:
        return True
    return on_parent_bytes(recorded, sha256_of(parent.key))


@dataclass(frozen=True)
class Reuse:
    """Where a plan finds layers it need not build: this host's layer cache, and `in_store`,
    the keys the remote layer cache holds. Neither changes a key."""

    cache: LayerCache
    in_store: frozenset[str] = frozenset()


def make_plan(cfg: Config, family: Family, reuse: Reuse, credential: BuildCredential) -> Plan:
    """The family's layers with their keys, and which of them `reuse` spares building."""
    steps: list[Step] = []
    parent: Step | None = None
    repos = RepoStates()  # each repository is read once per plan
    for index, name in enumerate(family.layers):
        recipe = recipe_of(cfg, cfg.layers[name])
        inputs = recipe.inputs(family, parent.key if parent else None, credential, repos)
        lkey = layer_key(inputs)
        missing = _missing(cfg, recipe.layer)
        step = Step(index, recipe, lkey, inputs, False, (), missing, lkey in reuse.in_store)
        if _usable(reuse.cache, step, parent):
            step = dataclasses.replace(step, cached=True)
        else:
            reasons = _reasons(reuse.cache, family, step, parent)
            step = dataclasses.replace(step, reasons=tuple(reasons))
        steps.append(step)
        parent = step
    return Plan(family, tuple(_choose_fetches(steps)))


def _choose_fetches(steps: list[Step]) -> list[Step]:
    """Mark the layers to fetch: below the newest layer this host has or can fetch, the chain
    down to a cached layer, the root, or a sealed image (which needs no parent)."""
    available: list[bool] = []
    for step in steps:
        parent_ok = step.index == 0 or step.recipe.kind.standalone or available[-1]
        available.append(step.cached or (step.in_store and parent_ok))
    if not any(available):
        return steps
    index = max(i for i, ok in enumerate(available) if ok)
    out = list(steps)
    while index >= 0 and not out[index].cached:
        out[index] = dataclasses.replace(out[index], fetch=True)
        if out[index].recipe.kind.standalone:
            break
        index -= 1
    return out


def _usable(cache: LayerCache, step: Step, parent: Step | None) -> bool:
    """A cached overlay is only usable with its whole parent chain (a parent that is not
    usable here has no bytes to fit), on the exact parent bytes it was built on; a sealed
    image stands alone."""
    if not cache.has(step.key):
        return False

    def usable_parent_sha256(key: str) -> str | None:
        return cache.sha256(key) if parent is not None and parent.cached else None

    recorded = cache.facts(step.key).get("parent_sha256")
    return fits_parent(step, parent, recorded, usable_parent_sha256)


def _missing(cfg: Config, layer: LayerDef) -> tuple[Problem, ...]:
    schema = cfg.variables_schemas.get(layer.name)
    if schema is None:
        return ()
    where = f".layers.{layer.name}.variables"
    return tuple(variables.missing(str(cfg.path), where, layer.variables, schema))


def _reasons(cache: LayerCache, family: Family, step: Step, parent: Step | None) -> list[str]:
    """Why `step`'s layer, not usable from the cache, has to be built."""
    layer, key, inputs = step.layer, step.key, step.inputs
    present = cache.has(key)
    if present and parent is not None and parent.cached:
        name = parent.layer.name
        return [f"cached, but built on other bytes of parent layer {name} (it was rebuilt)"]
    if present:
        return ["cached, but a layer below it is missing from the cache"]
    previous = cache.ref(family.name, layer.name)
    if previous == key:
        return ["same inputs as last build, but not in the cache"]
    old = cache.inputs(previous) if previous else None
    named = f"parent layer {parent.layer.name} changed" if parent else "parent layer changed"
    return [named if r == "parent layer changed" else r for r in explain(old, inputs)]
