"""Plan a family build: each layer's inputs, key, and whether the cache already has it.

Keys never depend on the cache; the cache only decides which layers are reused. A build
walks back from the family's last layer to the newest usable cached one and builds the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imagefactory.config import Config, Family, IsoSource, LayerDef, StandinSource
from imagefactory.engine.cache import LayerCache
from imagefactory.engine.keys import Inputs, explain, file_entry, layer_key
from imagefactory.guest.credential import BuildKey
from imagefactory.sources import standin
from imagefactory.sources.repostate import RepoStates
from imagefactory.util import tools

REPO = Path(__file__).resolve().parents[2]
LAYER_TEMPLATE = REPO / "packer" / "layer.pkr.hcl"
PACKER_TOOLS = ("packer", "qemu-img", "qemu-system-x86_64")
# Staged into a layer with `reboot: true`: records /etc, then compares after the second run.
IDEMPOTENCE_CHECK = REPO / "packer" / "files" / "layer" / "check-idempotence.sh"
SEAL_FINALIZE = "finalize-seal.sh"


@dataclass(frozen=True)
class Step:
    index: int
    layer: LayerDef
    key: str
    inputs: Inputs
    cached: bool
    reasons: tuple[str, ...]  # why it has to be built; empty when reused

    @property
    def short(self) -> str:
        return self.key[:12]


@dataclass(frozen=True)
class Plan:
    family: Family
    steps: tuple[Step, ...]

    @property
    def todo(self) -> tuple[Step, ...]:
        """Layers to build: everything after the newest usable cached layer."""
        for step in reversed(self.steps):
            if step.cached:
                return self.steps[step.index + 1 :]
        return self.steps

    @property
    def final(self) -> Step:
        return self.steps[-1]


def template_of(layer: LayerDef) -> Path:
    return layer.template or LAYER_TEMPLATE


def layer_inputs(
    cfg: Config,
    family: Family,
    layer: LayerDef,
    parent: str | None,
    key: BuildKey,
    repos: RepoStates | None = None,
) -> Inputs:
    """The canonical description of a layer's inputs; its sha256 is the layer key.

    A layer with `epoch_from` reads its repositories' state here (network, read-only).
    """
    rel = cfg.root
    doc: Inputs = {"name": layer.name, "variables": dict(layer.variables), "epoch": layer.epoch}
    if layer.epoch_from_repomd:
        repos = repos or RepoStates()
        where = f"{cfg.path}: .layers.{layer.name}.epoch_from.repomd"
        doc["repo_state"] = [
            repos.of(url, f"{where}[{i}]").to_input()
            for i, url in enumerate(layer.epoch_from_repomd)
        ]
    src = cfg.sources.get(layer.source or "")
    if isinstance(src, StandinSource):
        doc |= {
            "kind": "standin",
            "source": {
                "suite": src.suite,
                "packages": list(src.packages),
                "epoch": src.epoch,
                "disk_size_mib": src.disk_size_mib,
            },
            "source_files": [file_entry(p, REPO) for p in (standin.CUSTOMIZE, standin.MAKE_DISK)],
            "tools": tools.versions(standin.TOOLS),
        }
    else:
        doc |= {
            "kind": "seal" if layer.seal else ("install" if src else "layer"),
            "template": file_entry(template_of(layer), REPO),
            "scripts": [file_entry(p, rel) for p in layer.scripts],
            "files": [file_entry(p, rel) for p in layer.files],
            "tools": tools.versions(PACKER_TOOLS),
        }
        if isinstance(src, IsoSource):
            doc["source"] = {"url": src.url, "sha256": src.sha256}
        if layer.seal:
            doc["compression"] = cfg.build.compression
        if layer.reboot:
            doc["reboot"] = file_entry(IDEMPOTENCE_CHECK, REPO)
    if parent is None:
        doc |= {"build_user": cfg.build.build_user, "build_key": key.fingerprint}
    else:
        doc["parent"] = parent
    if layer.per_family:
        doc["family"] = family.name
    return doc


def make_plan(cfg: Config, family_name: str, cache: LayerCache, key: BuildKey) -> Plan:
    family = cfg.family(family_name)
    steps: list[Step] = []
    parent: Step | None = None
    repos = RepoStates()  # each repository is read once per plan
    for index, name in enumerate(family.layers):
        layer = cfg.layers[name]
        inputs = layer_inputs(cfg, family, layer, parent.key if parent else None, key, repos)
        lkey = layer_key(inputs)
        present = cache.has(lkey)
        # An overlay is only usable with its whole parent chain; a sealed image stands alone.
        usable = present and (layer.seal or parent is None or parent.cached)
        reasons: tuple[str, ...] = ()
        if not usable:
            reasons = tuple(_reasons(cache, family.name, layer.name, lkey, inputs, present, parent))
        step = Step(index, layer, lkey, inputs, usable, reasons)
        steps.append(step)
        parent = step
    return Plan(family, tuple(steps))


def _reasons(
    cache: LayerCache,
    family: str,
    layer: str,
    key: str,
    inputs: Inputs,
    present: bool,
    parent: Step | None,
) -> list[str]:
    if present:
        return ["cached, but a layer below it is missing from the cache"]
    previous = cache.ref(family, layer)
    if previous == key:
        return ["same inputs as last build, but not in the cache"]
    old = cache.inputs(previous) if previous else None
    named = f"parent layer {parent.layer.name} changed" if parent else "parent layer changed"
    return [named if r == "parent layer changed" else r for r in explain(old, inputs)]
