"""Run state of a build: one context per family build, one per layer being built.

A recipe builds a layer from one LayerBuild: the family's context and the layer's own state
(its key, parent, staging dir, log, accelerator, timer). Neither names the plan, so the
recipes that take them and the plan that holds the recipes import each other in one direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imagefactory.choices import Firmware
from imagefactory.config import Config, Family
from imagefactory.engine.cache import LayerCache
from imagefactory.guest.credential import BuildCredential
from imagefactory.util.progress import Timer


@dataclass(frozen=True)
class Artifacts:
    """Where everything the factory writes lives (all under one directory, git-ignored)."""

    root: Path

    @property
    def cache(self) -> LayerCache:
        return LayerCache(self.root / "cache")

    @property
    def credentials(self) -> Path:
        """The build credential (an SSH key pair made for this host's builds)."""
        return self.root / "keys"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def debs(self) -> Path:
        return self.root / "cache" / "debs"

    @property
    def sources(self) -> Path:
        """Verified install media (DVDs), named by their sha256."""
        return self.root / "sources"

    def images(self, family: str) -> Path:
        return self.root / "images" / family


@dataclass(frozen=True)
class BuildContext:
    """One family's build."""

    cfg: Config
    artifacts: Artifacts
    family: Family
    firmware: Firmware  # how every layer boots: as the family's root layer decides
    credential: BuildCredential
    started: str  # when the build began (the manifest records it)


@dataclass(frozen=True)
class LayerBuild:
    """One layer being built: the family's context and this layer's own state."""

    ctx: BuildContext
    name: str  # the layer's name
    key: str
    parent_key: str | None  # None for a root layer
    accelerator: str  # "-" for a layer that runs no VM
    tmp: Path  # the layer's staging directory (removed unless committed)
    log: Path
    timer: Timer

    @property
    def entry(self) -> Path:
        """Where the layer's files are written; renamed into the cache when complete."""
        return self.tmp / "entry"

    @property
    def serial_log(self) -> Path:
        return self.log.with_suffix(".serial.log")

    @property
    def parent(self) -> str:
        """The parent layer's key."""
        if self.parent_key is None:
            raise ValueError(f"layer {self.name} is a root layer: it has no parent")
        return self.parent_key

    @property
    def parent_image(self) -> Path:
        return self.ctx.artifacts.cache.image(self.parent)
