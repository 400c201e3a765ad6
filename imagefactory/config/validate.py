"""The meaning of a configuration: references between its parts and files on disk."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from imagefactory import variables
from imagefactory.choices import LayerKind
from imagefactory.config.model import Config, Family
from imagefactory.errors import Problem
from imagefactory.sources import install


@dataclass(frozen=True)
class Unchecked:
    """Sources and layers left out of the model because their shape is wrong (reported by
    the schema pass): a reference to one is not unknown, and what depends on its contents
    (a family's order of layers) is not judged."""

    sources: frozenset[str] = frozenset()
    layers: frozenset[str] = frozenset()


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


def semantic_problems(cfg: Config, unchecked: Unchecked = Unchecked()) -> list[Problem]:
    file = str(cfg.path)
    out: list[Problem] = []
    for layer in cfg.layers.values():
        where = f".layers.{layer.name}"
        if layer.source is not None and layer.source not in {*cfg.sources, *unchecked.sources}:
            known = ", ".join(sorted({*cfg.sources, *unchecked.sources}))
            out.append(
                Problem(
                    file, f"{where}.source", f"unknown source '{layer.source}'", f"one of: {known}"
                )
            )
        if layer.kind is LayerKind.STANDIN and (layer.template or layer.scripts):
            out.append(
                Problem(
                    file,
                    where,
                    "a stand-in source layer is built without Packer",
                    "remove template/scripts; add a layer on top of it instead",
                )
            )
        if layer.kind is LayerKind.INSTALL and layer.template is None:
            out.append(
                Problem(
                    file,
                    f"{where}.template",
                    "an ISO install layer needs a template",
                    "e.g. template: packer/install-ol8.pkr.hcl",
                )
            )
        schema = cfg.variables_schemas.get(layer.name)
        if schema is not None:
            vars_where = f"{where}.variables"
            bad = variables.problems(file, vars_where, layer.variables, schema)
            out += bad
            if layer.kind is LayerKind.INSTALL and not bad:
                out += install.kickstart_problems(
                    file, where, layer.variables, layer.files, cfg.relpath
                )
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
                elif kind == "scripts" and p.is_dir():
                    out.append(
                        Problem(
                            file,
                            f"{where}.scripts[{i}]",
                            f"{cfg.relpath(p)} is a directory, not a script",
                            "list each script of it (directories belong under files:)",
                        )
                    )
        if layer.template is not None and not layer.template.is_file():
            out.append(
                Problem(file, f"{where}.template", f"{cfg.relpath(layer.template)} does not exist")
            )
    layer_names = {*cfg.layers, *unchecked.layers}
    for fam in cfg.families.values():
        where = f".families.{fam.name}.layers"
        known = ", ".join(sorted(layer_names))
        for i, name in enumerate(fam.layers):
            if name not in layer_names:
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
        if unchecked.layers & set(fam.layers):
            continue  # the order of its layers is judged once all of them can be
        defs = [cfg.layers[n] for n in fam.layers if n in cfg.layers]
        if defs and not defs[0].kind.is_root:
            out.append(
                Problem(
                    file,
                    f"{where}[0]",
                    f"first layer '{defs[0].name}' has no source",
                    "a family starts from a layer with `source:`",
                )
            )
        for i, d in enumerate(defs[1:], start=1):
            if d.kind.is_root:
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
