"""The factory's configuration as the program holds it: frozen dataclasses, one per section.

Each setting is declared twice, each time saying what the other cannot: the JSON Schema in
imagefactory/schemas/ (what the file may contain, with the user's messages) and the type and
default here. imagefactory.util.model.build joins them; there is no third, hand-written list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagefactory.choices import Accelerator, Compression, LayerKind
from imagefactory.errors import ConfigError, Problem

# Declared with the sources (below the config, which builds them); re-exported here.
from imagefactory.sources.model import IsoSource as IsoSource
from imagefactory.sources.model import Source as Source
from imagefactory.sources.model import StandinSource as StandinSource
from imagefactory.store.settings import StoreSettings

SCALAR = str | int | bool


@dataclass(frozen=True)
class BuildSettings:
    accelerator: Accelerator = Accelerator.AUTO
    cpus: int = 2
    memory_mib: int = 1024
    ssh_timeout: str = "10m"
    build_user: str = "packer"
    kvm_probe_timeout_s: float = 10.0
    compression: Compression = Compression.ZLIB


@dataclass(frozen=True)
class LayerDef:
    name: str
    kind: LayerKind = LayerKind.SCRIPTS  # from `source:` (its kind) and `seal:`
    description: str = ""
    source: str | None = None
    template: Path | None = None
    scripts: tuple[Path, ...] = ()
    files: tuple[Path, ...] = ()
    variables: Mapping[str, SCALAR] = field(default_factory=dict)
    epoch: str | None = None
    # epoch_from.repomd: repository base URLs whose repomd.xml state is an input (repostate.py)
    epoch_from_repomd: tuple[str, ...] = ()
    per_family: bool = False
    seal: bool = False
    reboot: bool = False  # reboot after the scripts, run them again, prove /etc unchanged
    # JSON Schema of `variables`, checked at config load (the install kind has a built-in one)
    variables_schema: Path | None = None


@dataclass(frozen=True)
class ComplianceScan:
    """The `oscap xccdf eval` the verify boot runs in the guest, and whether it gates."""

    datastream: Path
    tailoring: Path
    profile: str  # a profile id of the tailoring
    waivers: Path | None = None  # waivers.yaml: `exception` waivers tolerate a failing rule
    gate: bool = False  # fail verify on a failing rule that no waiver tolerates


@dataclass(frozen=True)
class Family:
    name: str
    layers: tuple[str, ...]
    description: str = ""
    os: str = ""
    specs: tuple[Path, ...] = ()  # testinfra spec files the sealed image must pass
    compliance: ComplianceScan | None = None


@dataclass(frozen=True)
class Config:
    path: Path
    root: Path  # paths in the file are relative to the directory holding it
    build: BuildSettings
    sources: Mapping[str, Source]
    layers: Mapping[str, LayerDef]
    families: Mapping[str, Family]
    store: StoreSettings
    # layer name -> its variables' JSON Schema (built in for install layers; variables_schema)
    variables_schemas: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    def family(self, name: str) -> Family:
        if name not in self.families:
            known = ", ".join(sorted(self.families)) or "none"
            problem = Problem(
                str(self.path), ".families", f"unknown family '{name}'", f"one of: {known}"
            )
            raise ConfigError([problem])
        return self.families[name]

    def relpath(self, path: Path) -> str:
        """A path as the user wrote it: relative to the config's directory when inside it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)
