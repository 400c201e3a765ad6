"""Load and validate the factory configuration (one YAML file) into frozen dataclasses.

Two passes, every problem collected before anything is reported:
1. shape: YAML syntax, duplicate keys, JSON Schema (unknown keys are errors);
2. meaning: references between families, layers, sources and files on disk.
"""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from imagefactory.errors import ConfigError, Problem
from imagefactory.sources.install import settings_problems as install_settings_problems
from imagefactory.store.settings import StoreSettings, store_settings_from_dict

SCALAR = str | int | bool


@dataclass(frozen=True)
class BuildSettings:
    accelerator: str = "auto"
    cpus: int = 2
    memory_mib: int = 1024
    ssh_timeout: str = "10m"
    build_user: str = "packer"
    kvm_probe_timeout_s: float = 10.0
    compression: str = "zlib"  # zstd is faster and smaller; needs QEMU >= 5.1 readers


@dataclass(frozen=True)
class IsoSource:
    name: str
    url: str
    sha256: str
    os: str = ""


@dataclass(frozen=True)
class StandinSource:
    """A small Debian guest built from packages on the build host (the CI stand-in for OL8)."""

    name: str
    suite: str
    packages: tuple[str, ...]
    epoch: str
    disk_size_mib: int = 2048
    os: str = "debian12"


Source = IsoSource | StandinSource


@dataclass(frozen=True)
class LayerDef:
    name: str
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}' (line {mark.line + 1})", mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,
)


def _schema(name: str = "factory") -> dict[str, Any]:
    text = resources.files("imagefactory").joinpath(f"schemas/{name}.schema.json").read_text()
    doc: dict[str, Any] = json.loads(text)
    return doc


def _yaml_path(parts: Any) -> str:
    return "." + ".".join(str(p) for p in parts) if parts else "."


def schema_problems(file: str, doc: Any, schema: str = "factory") -> list[Problem]:
    """Every JSON Schema violation of `doc` as a Problem with its YAML path and a hint."""
    validator = jsonschema.Draft202012Validator(_schema(schema))
    problems = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        path = _yaml_path(err.absolute_path)
        hint = ""
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            hint = f"known keys here: {', '.join(allowed)}" if allowed else ""
        elif err.validator == "enum":
            hint = "allowed: " + ", ".join(map(str, err.validator_value))
        elif err.validator == "pattern":
            hint = f"must match {err.validator_value}"
        problems.append(Problem(file, path, err.message, hint))
    return problems


def read_yaml(path: Path) -> Any:
    """Parse YAML safely; a syntax error or duplicate key becomes a ConfigError with the line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([Problem(str(path), ".", f"cannot read file: {exc.strerror}")]) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "."
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(str(path), where, f"invalid YAML: {problem}")]) from None


def load_config(path: Path) -> Config:
    """Read, validate and model the configuration; raise ConfigError listing every problem."""
    path = path.resolve() if path.exists() else path
    doc = read_yaml(path)
    file = str(path)
    problems = schema_problems(file, doc)
    if problems:
        raise ConfigError(problems)
    config = _model(path, doc)
    problems = _semantic_problems(config)
    problems += store_settings_from_dict(doc.get("store"), file)[1]
    if problems:
        raise ConfigError(problems)
    return config


def _model(path: Path, doc: dict[str, Any]) -> Config:
    root = path.parent
    build = BuildSettings(**doc.get("build", {}))
    sources: dict[str, Source] = {}
    for name, src in doc["sources"].items():
        fields = {k: v for k, v in src.items() if k != "kind"}
        if src["kind"] == "iso":
            sources[name] = IsoSource(name=name, **fields)
        else:
            fields["packages"] = tuple(fields["packages"])
            sources[name] = StandinSource(name=name, **fields)
    layers = {}
    for name, ld in doc["layers"].items():
        layers[name] = LayerDef(
            name=name,
            description=ld.get("description", ""),
            source=ld.get("source"),
            template=root / ld["template"] if "template" in ld else None,
            scripts=tuple(root / s for s in ld.get("scripts", [])),
            files=tuple(root / f for f in ld.get("files", [])),
            variables=dict(ld.get("variables", {})),
            epoch=ld.get("epoch"),
            epoch_from_repomd=tuple(ld.get("epoch_from", {}).get("repomd", [])),
            per_family=ld.get("per_family", False),
            seal=ld.get("seal", False),
            reboot=ld.get("reboot", False),
        )
    families = {
        name: Family(
            name=name,
            layers=tuple(f["layers"]),
            description=f.get("description", ""),
            os=f.get("os", ""),
            specs=tuple(root / p for p in f.get("specs", [])),
            compliance=_compliance(root, f.get("compliance")),
        )
        for name, f in doc["families"].items()
    }
    store = relative_to(store_settings_from_dict(doc.get("store"), str(path))[0], root)
    return Config(path, root, build, sources, layers, families, store)


def relative_to(store: StoreSettings, root: Path) -> StoreSettings:
    """Relative store paths are relative to the file that names them (`root` its directory),
    like every other path in a config file."""
    return dataclasses.replace(
        store,
        **{
            f: root / getattr(store, f)
            for f in ("path", "signing_key", "allowed_signers", "image_dir")
            if not str(getattr(store, f)).startswith(("/", "~"))
        },
    )


def _compliance(root: Path, doc: dict[str, Any] | None) -> ComplianceScan | None:
    if doc is None:
        return None
    waivers = doc.get("waivers")
    return ComplianceScan(
        datastream=root / doc["datastream"],
        tailoring=root / doc["tailoring"],
        profile=doc["profile"],
        waivers=root / waivers if waivers else None,
        gate=doc.get("gate", False),
    )


def _tailoring_profiles(path: Path) -> set[str]:
    """Profile ids a tailoring file defines (XCCDF 1.1 or 1.2: any `Profile` element)."""
    root = ET.parse(path).getroot()
    return {e.get("id", "") for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Profile"}


def _compliance_problems(cfg: Config, fam: Family) -> list[Problem]:
    scan, file, where = fam.compliance, str(cfg.path), f".families.{fam.name}.compliance"
    if scan is None:
        return []
    out = []
    for key, p in (
        ("datastream", scan.datastream),
        ("tailoring", scan.tailoring),
        ("waivers", scan.waivers),
    ):
        if p is not None and not p.is_file():
            out.append(Problem(file, f"{where}.{key}", f"{cfg.relpath(p)} does not exist"))
    if scan.tailoring.is_file():
        try:
            profiles = _tailoring_profiles(scan.tailoring)
        except ET.ParseError as exc:
            return [
                *out,
                Problem(
                    file,
                    f"{where}.tailoring",
                    f"{cfg.relpath(scan.tailoring)} is not valid XML: {exc}",
                ),
            ]
        if scan.profile not in profiles:
            out.append(
                Problem(
                    file,
                    f"{where}.profile",
                    f"profile '{scan.profile}' is not in {cfg.relpath(scan.tailoring)}",
                    f"one of: {', '.join(sorted(profiles)) or 'none'}",
                )
            )
    return out


def _semantic_problems(cfg: Config) -> list[Problem]:
    file = str(cfg.path)
    out: list[Problem] = []
    for layer in cfg.layers.values():
        where = f".layers.{layer.name}"
        if layer.source is not None and layer.source not in cfg.sources:
            known = ", ".join(sorted(cfg.sources))
            out.append(
                Problem(
                    file, f"{where}.source", f"unknown source '{layer.source}'", f"one of: {known}"
                )
            )
        src = cfg.sources.get(layer.source or "")
        if isinstance(src, StandinSource) and (layer.template or layer.scripts):
            out.append(
                Problem(
                    file,
                    where,
                    "a stand-in source layer is built without Packer",
                    "remove template/scripts; add a layer on top of it instead",
                )
            )
        if isinstance(src, IsoSource) and layer.template is None:
            out.append(
                Problem(
                    file,
                    f"{where}.template",
                    "an ISO install layer needs a template",
                    "e.g. template: packer/install-ol8.pkr.hcl",
                )
            )
        if isinstance(src, IsoSource):  # IF_FIRMWARE, IF_DISK_SIZE_MIB, the kickstart
            out += install_settings_problems(cfg, layer)
        if layer.source is None and not layer.scripts:
            out.append(Problem(file, f"{where}.scripts", "a layer needs at least one script"))
        if layer.seal and layer.source is not None:
            out.append(Problem(file, where, "a seal layer cannot be a root layer"))
        if layer.reboot and (layer.seal or layer.source is not None):
            out.append(
                Problem(
                    file,
                    f"{where}.reboot",
                    "only a scripts layer can reboot",
                    "seal and root layers end with their own shutdown",
                )
            )
        for kind, paths in (("scripts", layer.scripts), ("files", layer.files)):
            for i, p in enumerate(paths):
                if not p.exists():
                    out.append(
                        Problem(file, f"{where}.{kind}[{i}]", f"{cfg.relpath(p)} does not exist")
                    )
        if layer.template is not None and not layer.template.is_file():
            out.append(
                Problem(file, f"{where}.template", f"{cfg.relpath(layer.template)} does not exist")
            )
    for fam in cfg.families.values():
        where = f".families.{fam.name}.layers"
        known = ", ".join(sorted(cfg.layers))
        for i, name in enumerate(fam.layers):
            if name not in cfg.layers:
                out.append(
                    Problem(
                        file,
                        f"{where}[{i}]",
                        f"unknown layer '{name}'",
                        f"define it under layers: (known: {known})",
                    )
                )
        for i, p in enumerate(fam.specs):
            if not p.is_file():
                out.append(
                    Problem(
                        file, f".families.{fam.name}.specs[{i}]", f"{cfg.relpath(p)} does not exist"
                    )
                )
        out += _compliance_problems(cfg, fam)
        if len(set(fam.layers)) != len(fam.layers):
            out.append(Problem(file, where, "a layer is listed twice"))
        defs = [cfg.layers[n] for n in fam.layers if n in cfg.layers]
        if defs and defs[0].source is None:
            out.append(
                Problem(
                    file,
                    f"{where}[0]",
                    f"first layer '{defs[0].name}' has no source",
                    "a family starts from a layer with `source:`",
                )
            )
        for i, d in enumerate(defs[1:], start=1):
            if d.source is not None:
                out.append(
                    Problem(
                        file, f"{where}[{i}]", f"layer '{d.name}' has a source but is not first"
                    )
                )
        if defs and not defs[-1].seal:
            out.append(
                Problem(
                    file,
                    where,
                    f"last layer '{defs[-1].name}' is not a seal layer",
                    "end the family with a layer that has `seal: true`",
                )
            )
        for i, d in enumerate(defs[:-1]):
            if d.seal:
                out.append(Problem(file, f"{where}[{i}]", f"seal layer '{d.name}' must be last"))
    return out
