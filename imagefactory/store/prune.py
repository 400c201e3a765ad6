"""Retention: keep the newest versions per family and every channel target; delete the rest,
incomplete versions (killed publishes) and unfinished uploads. Dry run unless applied."""

from __future__ import annotations

import json
from dataclasses import dataclass

from imagefactory.store import layer_cache, layout
from imagefactory.store.backend import ObjectMissing, StoreBackend, StoreError
from imagefactory.store.channels import all_channels

PUSHES = layer_cache.PREFIX  # pushes of the remote layer cache: their unfinished uploads too


@dataclass(frozen=True)
class PrunePlan:
    delete_versions: tuple[tuple[str, str], ...]  # complete images beyond the keep window
    incomplete: tuple[tuple[str, str], ...]  # versions without a valid manifest (killed publishes)
    abandoned_uploads: tuple[str, ...]
    keep: tuple[tuple[str, str], ...]
    delete_layers: tuple[str, ...] = ()  # remote layer cache entries no kept image names
    orphans: tuple[str, ...] = ()  # objects of kept layers that no reader uses (layer_cache)
    foreign: tuple[tuple[str, str], ...] = ()  # under images/ but no image's name: not ours

    def describe(self, applied: bool) -> str:
        verb = "deleted" if applied else "would delete"
        lines = [f"{verb} {f} {v}" for f, v in self.delete_versions]
        lines += [f"{verb} incomplete {f} {v}" for f, v in self.incomplete]
        lines += [f"{verb} unfinished upload {k}" for k in self.abandoned_uploads]
        lines += [f"{verb} remote layer {k}" for k in self.delete_layers]
        lines += [f"{verb} orphan {k}" for k in self.orphans]
        lines += [f"keep {f} {v}" for f, v in self.keep]
        lines += [f"left alone images/{f}/{v}/ (not an image's name)" for f, v in self.foreign]
        doomed = self.delete_versions + self.incomplete
        extra = self.abandoned_uploads or self.delete_layers or self.orphans
        if not applied and (doomed or extra):
            lines.append("dry run: nothing deleted (run again with --apply)")
        return "\n".join(lines) if lines else "store is empty"


def plan_prune(backend: StoreBackend, keep_last: int) -> PrunePlan:
    """Keep the newest `keep_last` images per family plus every channel target."""
    if keep_last < 1:
        raise StoreError("prune: --keep must be at least 1")
    pinned = set(all_channels(backend))
    delete: list[tuple[str, str]] = []
    incomplete: list[tuple[str, str]] = []
    keep: list[tuple[str, str]] = []
    foreign: list[tuple[str, str]] = []
    for family, versions in sorted(layout.scan_versions(backend).items()):
        complete = []
        for version in sorted(versions):
            if not (layout.NAME_RE.match(family) and layout.VERSION_RE.match(version)):
                foreign.append((family, version))  # nothing publish writes: never deleted
            elif layout.load_visible(backend, family, version) is not None:
                complete.append(version)
            else:
                incomplete.append((family, version))
        newest = set(complete[-keep_last:])
        for version in complete:
            target = keep if version in newest or (family, version) in pinned else delete
            target.append((family, version))
    kept_layers = _layer_keys(backend, keep)
    unreferenced = layer_cache.unreferenced(backend, kept_layers)
    return PrunePlan(
        tuple(delete),
        tuple(incomplete),
        tuple(backend.abandoned_uploads("images/") + backend.abandoned_uploads(PUSHES)),
        tuple(keep),
        tuple(unreferenced),
        tuple(layer_cache.orphans(backend, layer_cache.layer_dirs(backend) - set(unreferenced))),
        tuple(foreign),
    )


def _layer_keys(backend: StoreBackend, versions: list[tuple[str, str]]) -> set[str]:
    """Every layer key the kept images' manifests name (their remote layers stay)."""
    keys: set[str] = set()
    for family, version in versions:
        record = layout.load_visible(backend, family, version)
        layers = record.manifest.get("layers") if record is not None else None
        for layer in layers if isinstance(layers, list) else []:
            if isinstance(layer, dict) and isinstance(layer.get("key"), str):
                keys.add(layer["key"])
    return keys


def plan_removal(backend: StoreBackend, family: str, version: str) -> PrunePlan:
    """One named version, e.g. a damaged one (store.verify, Repair), unless a channel points
    at it: a pointer at a deleted version would break every pull of that channel."""
    layout.check_name("family", family)
    layout.check_version(version)
    if not backend.list_keys(layout.image_prefix(family, version)):
        raise StoreError(f"{backend.describe()}: {family} {version} is not in the store")
    channels = all_channels(backend).get((family, version))
    if channels:
        raise StoreError(
            f"{family} {version} is the target of channel(s) {channels}; promote them to "
            "another version first (invoke promote), then remove it"
        )
    return PrunePlan(((family, version),), (), (), ())


def apply_prune(backend: StoreBackend, plan: PrunePlan) -> None:
    """Delete what the plan lists: manifest first, so a half-pruned image is already invisible."""
    for family, version in plan.delete_versions + plan.incomplete:
        mkey = layout.manifest_key(family, version)
        backend.delete(mkey)
        for key in backend.list_keys(layout.image_prefix(family, version)):
            if key != mkey:
                backend.delete(key)
    if plan.abandoned_uploads:  # only a plan that listed them (not a single removal)
        backend.discard_abandoned("images/")
        backend.discard_abandoned(PUSHES)
    for key in plan.delete_layers:
        layer_cache.delete_layer(backend, key)
    for name in plan.orphans:
        backend.delete(name)
    _drop_stale_index(backend)


def _drop_stale_index(backend: StoreBackend) -> None:
    for key in backend.list_keys("sha256/"):
        try:
            blob = str(json.loads(backend.get_bytes(key))["blob"])
        except (ObjectMissing, ValueError, KeyError, TypeError):
            blob = ""
        if not blob or backend.size(blob) is None:
            backend.delete(key)
