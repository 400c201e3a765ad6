"""A family's output: the sealed image's manifest, and its copy under artifacts/images/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from imagefactory.choices import SEALED_IMAGE
from imagefactory.engine.context import Artifacts, LayerBuild
from imagefactory.engine.plan import Plan
from imagefactory.guest import seal
from imagefactory.util import provenance
from imagefactory.util.fsutil import write_json_atomic


def write_manifest(run: LayerBuild, plan: Plan, facts: dict[str, Any]) -> None:
    """manifest.json beside the sealed image: what it is, how it was made, how it boots.
    packages, compliance and verification are filled in by verify."""
    ctx, step = run.ctx, plan.final
    cache = ctx.artifacts.cache
    layers = []
    for s in plan.steps[:-1]:
        f = cache.facts(s.key)
        layers.append(_layer_entry(s.layer.name, s.key, f))
    layers.append(_layer_entry(step.layer.name, step.key, facts))
    info = seal.image_info(run.entry / facts["image"])
    family = plan.family
    manifest = {
        "schema": 1,
        "family": family.name,
        "os": family.os,
        # How a VM must boot the image: "uefi" needs OVMF (read-only code is enough, no
        # NVRAM: choices.OVMF_CODE), "bios" the default SeaBIOS. verify boots it this way.
        "firmware": plan.firmware.value,
        "image": {
            "file": f"{family.name}.qcow2",
            "sha256": facts["sha256"],
            "size": facts["size"],
            "format": "qcow2",
            "virtual_size": info["virtual-size"],
            "compression": ctx.cfg.build.compression.value,
        },
        "layers": layers,
        "tools": step.inputs.get("tools", {}),
        "git": provenance.git_state(ctx.cfg.root),
        "build": {
            "started": ctx.started,
            "finished": provenance.now(),
            "host": provenance.host(),
            "accelerator": facts["accelerator"],
        },
        "packages": None,
        "compliance": None,
        "verification": None,
    }
    write_json_atomic(run.entry / "manifest.json", manifest)


def _layer_entry(name: str, key: str, facts: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "key": key,
        "built_at": facts["built_at"],
        "build_seconds": facts["build_seconds"],
    }


def export_image(art: Artifacts, plan: Plan) -> tuple[Path, Path]:
    """Expose the sealed image as artifacts/images/<family>/ (hard links, swapped in whole).
    A local export for verify and publish; publishing to the store is imagefactory.store."""
    entry = art.cache.entry(plan.final.key)
    dest = art.images(plan.family.name)
    image = dest / f"{plan.family.name}.qcow2"
    manifest = dest / "manifest.json"
    if image.exists() and os.path.samefile(image, entry / SEALED_IMAGE):
        return image, manifest
    tmp = dest.with_name(f".{dest.name}.new")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for src_name, name in ((SEALED_IMAGE, image.name), ("manifest.json", "manifest.json")):
        try:
            os.link(entry / src_name, tmp / name)
        except OSError:
            shutil.copy2(entry / src_name, tmp / name)
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.rename(dest, old)
    os.rename(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)
    return image, manifest
