"""The build's side of the remote layer cache (imagefactory.store.layer_cache): fetch a layer
this host lacks before building it, push every layer this host built.

A fetched layer is used only if its signed record verifies, its inputs hash to the key the
plan computed, its image has the signed sha256, and (for an overlay) it was built on the exact
parent bytes this host has. Anything else is said plainly and the layer is built here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagefactory.config import Config, load_store_settings
from imagefactory.engine import integrity
from imagefactory.engine.context import BuildContext
from imagefactory.engine.keys import layer_key
from imagefactory.engine.plan import Plan, Step
from imagefactory.errors import ConfigError
from imagefactory.store import api
from imagefactory.store.api import StoreBackend, StoreError, layer_cache
from imagefactory.store.settings import StoreSettings
from imagefactory.util import progress, provenance
from imagefactory.util.fsutil import write_json_atomic


@dataclass(frozen=True)
class RemoteCache:
    """The store as a layer cache for one build, with the keys it held at plan time."""

    backend: StoreBackend
    signing_key: Path
    allowed_signers: Path
    keys: frozenset[str]
    push_blocked: str | None = None  # why this host pushes nothing (found before any upload)

    @classmethod
    def open(cls, settings: StoreSettings, create: bool = True) -> RemoteCache:
        """Reach the store and list its layers (the one request a fully cached build makes).
        A build (create=True) also proves it can push: the signing key signs, the signature
        is trusted, the store takes writes; if not, it fetches only and says why, at once."""
        backend = api.open_store(settings, create)
        signing_key = settings.signing_key.expanduser()
        allowed_signers = settings.allowed_signers.expanduser()
        blocked = None
        if create:
            blocked = layer_cache.push_problem(backend, signing_key, allowed_signers)
            if blocked is not None:
                progress.warn(f"remote layer cache: fetch only, nothing is pushed: {blocked}")
        keys = layer_cache.listing(backend)
        return cls(backend, signing_key, allowed_signers, keys, blocked)

    @classmethod
    def for_config(
        cls, cfg: Config, enabled: bool = True, create: bool = True
    ) -> RemoteCache | None:
        """The store as a remote layer cache when store.layer_cache is on (and not turned
        off with --no-remote-cache); None, with a warning, when the store cannot be reached:
        the build then works from the local cache alone. create=False (plan, read-only):
        a directory store that does not exist yet is not made."""
        if not (enabled and cfg.store.layer_cache):
            return None
        try:  # the store settings as the store tasks read them (with the env's overrides)
            return cls.open(load_store_settings(cfg.path), create)
        except (StoreError, ConfigError) as exc:
            progress.warn(f"remote layer cache not used: {exc}")
            return None


def fetch_layer(ctx: BuildContext, plan: Plan, step: Step, remote: RemoteCache) -> str | None:
    """Download `step`'s layer into the local cache; None when done (or present meanwhile),
    else why it cannot be used (the caller builds it)."""
    cache = ctx.artifacts.cache
    parent = plan.parent(step)
    with cache.lock(step.key):
        if cache.has(step.key):
            if plan.fits_parent(step, cache.facts(step.key).get("parent_sha256"), cache.sha256):
                return None  # fetched or built meanwhile by another build
            integrity.evict(cache, step.key, holding_lock=True)  # built on other parent bytes
        try:
            layer = layer_cache.read_record(remote.backend, step.key, remote.allowed_signers)
        except StoreError as exc:
            return str(exc)
        if layer is None:
            return "no longer in the store"
        if layer.name != step.layer.name or layer_key(layer.inputs) != step.key:
            return "its signed record does not describe this layer (inputs do not hash to its key)"
        if parent is not None and not plan.fits_parent(step, layer.parent_sha256, cache.sha256):
            have = cache.sha256(parent.key)
            return (
                f"it was built on other bytes of parent layer {parent.layer.name} "
                f"({str(layer.parent_sha256)[:12]}, this host has {str(have)[:12]})"
            )
        title = f"{plan.label(step)}  fetching from the store (built by {layer.signer})"
        with progress.step(title), cache.staging(step.key) as tmp:
            entry = tmp / "entry"
            entry.mkdir()
            try:
                layer_cache.fetch_image(remote.backend, layer, entry / layer.image)
            except StoreError as exc:
                return str(exc)
            if layer.manifest is not None:
                write_json_atomic(entry / "manifest.json", layer.manifest)
            facts = {
                **layer.facts,
                "sha256": layer.sha256,
                "size": layer.size,
                "fetched_from": remote.backend.describe(),
                "fetched_at": provenance.now(),
                "signer": layer.signer,
            }
            cache.commit(step.key, entry, layer.inputs, facts)
    return None


def push_layer(
    ctx: BuildContext, plan: Plan, step: Step, remote: RemoteCache
) -> layer_cache.PushResult | None:
    """Push a layer this host has; None (and nothing sent) when the store's copy of its parent
    is not the one it was built on: it would be of no use to any host."""
    if remote.push_blocked is not None:
        return None  # said once when the store was opened
    cache = ctx.artifacts.cache
    facts = cache.facts(step.key)
    parent = plan.parent(step)
    # ours: the parent bytes this layer was built on; the store's copy of the parent must be them
    if parent is not None:
        ours = cache.sha256(parent.key)
        if not plan.fits_parent(step, ours, lambda key: _store_sha256(remote, key)):
            progress.detail(
                f"not pushed {step.layer.name} {step.short}: the store keeps other bytes of "
                f"its parent {parent.layer.name} (another host's build won)"
            )
            return None
    entry = cache.entry(step.key)
    manifest: dict[str, Any] | None = None
    if (entry / "manifest.json").is_file() and step.recipe.kind.standalone:
        manifest = json.loads((entry / "manifest.json").read_text())
    record = {
        "key": step.key,
        "name": step.layer.name,
        "image": facts["image"],
        "sha256": facts["sha256"],
        "size": facts["size"],
        "parent": facts.get("parent"),
        "parent_sha256": facts.get("parent_sha256"),
        "inputs": cache.inputs(step.key) or step.inputs,
        "facts": {k: v for k, v in facts.items() if k not in ("fetched_from", "fetched_at")},
        "manifest": manifest,
    }
    result = layer_cache.push(
        remote.backend,
        record,
        entry / str(facts["image"]),
        remote.signing_key,
        remote.allowed_signers,
    )
    state = "pushed" if result.uploaded else "already in the store"
    if not result.won:
        state = f"not used: the store keeps another build of it ({result.store_sha256[:12]})"
    progress.detail(f"{step.layer.name} {step.short}: {state}")
    return result


def _store_sha256(remote: RemoteCache, key: str) -> str | None:
    try:
        layer = layer_cache.read_record(remote.backend, key, remote.allowed_signers)
    except StoreError:
        return None
    return layer.sha256 if layer is not None else None
