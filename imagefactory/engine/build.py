"""Build a family: plan, then build each missing layer in order and publish the sealed image.

Each layer is built in a temp directory and renamed into the cache only when complete, under
a lock on its key; a failure or Ctrl-C leaves the cache exactly as it was.
"""

from __future__ import annotations

import base64
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagefactory.config import Config, IsoSource, LayerDef, StandinSource
from imagefactory.engine.cache import LAYER_IMAGE, SEALED_IMAGE, LayerCache
from imagefactory.engine.plan import (
    IDEMPOTENCE_CHECK,
    SEAL_FINALIZE,
    Plan,
    Step,
    make_plan,
    template_of,
)
from imagefactory.errors import BuildError
from imagefactory.guest import accel, packer, seal
from imagefactory.guest.credential import BuildKey, ensure_build_key
from imagefactory.sources import install, iso, standin
from imagefactory.util import progress, provenance
from imagefactory.util.fsutil import sha256_file, write_json_atomic
from imagefactory.util.tools import run


@dataclass(frozen=True)
class Artifacts:
    """Where everything the factory writes lives (all under one directory, git-ignored)."""

    root: Path

    @property
    def cache(self) -> LayerCache:
        return LayerCache(self.root / "cache")

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def debs(self) -> Path:
        return self.root / "cache" / "debs"

    def images(self, family: str) -> Path:
        return self.root / "images" / family


@dataclass(frozen=True)
class BuildResult:
    plan: Plan
    built: tuple[str, ...]
    image: Path
    manifest: Path


def plan_family(cfg: Config, family: str, art: Artifacts) -> Plan:
    return make_plan(cfg, family, art.cache, ensure_build_key(art.keys))


def build_family(cfg: Config, family: str, art: Artifacts) -> BuildResult:
    """Build whatever the plan says is missing; a no-op when every layer is cached."""
    key = ensure_build_key(art.keys)
    plan = make_plan(cfg, family, art.cache, key)
    cache = art.cache
    total = len(plan.steps)
    todo = {s.key for s in plan.todo}
    built: list[str] = []
    started = provenance.now()
    for step in plan.todo:  # sources first: a missing DVD fails before any VM starts
        src = cfg.sources.get(step.layer.source or "")
        if isinstance(src, IsoSource):
            with progress.step(f"source {src.name}: {src.url}"):
                iso.fetch_iso(src, art.root / "sources", str(cfg.path))
    for step in plan.steps:
        label = f"[{step.index + 1}/{total}] {step.layer.name} {step.short}"
        if step.key not in todo:
            progress.say(f"==> {label}  cached")
            continue
        with cache.lock(step.key):
            if cache.has(step.key):
                progress.say(f"==> {label}  cached (built meanwhile by another build)")
                continue
            why = "; ".join(step.reasons)
            # Chosen only when a VM is about to run (the stand-in base needs none, and its
            # kernel package then serves the probe).
            no_vm = isinstance(cfg.sources.get(step.layer.source or ""), StandinSource)
            accel_name = (
                "-"
                if no_vm
                else accel.choose(
                    cfg.build.accelerator, cfg.build.kvm_probe_timeout_s, (art.debs,)
                ).accelerator
            )
            with progress.step(f"{label}  building ({why}) [{accel_name}]") as timer:
                _build_step(cfg, art, plan, step, key, accel_name, timer, started)
            built.append(step.layer.name)
    for step in plan.steps:
        cache.set_ref(plan.family.name, step.layer.name, step.key)
    with cache.lock(f"images-{family}"):  # two builds of one family swap the dir in turn
        image, manifest = _publish_local(art, plan)
    done = f"built {', '.join(built)}" if built else "up to date"
    progress.say(f"==> {family}: {image} ({done})")
    return BuildResult(plan, tuple(built), image, manifest)


def _build_step(
    cfg: Config,
    art: Artifacts,
    plan: Plan,
    step: Step,
    key: BuildKey,
    accelerator: str,
    timer: progress.Timer,
    started: str,
) -> None:
    cache = art.cache
    art.logs.mkdir(parents=True, exist_ok=True)
    log = art.logs / f"{plan.family.name}-{step.layer.name}-{step.short}.log"
    log.unlink(missing_ok=True)
    progress.detail(f"log: {log}")
    with cache.staging(step.key) as tmp:
        entry = tmp / "entry"
        entry.mkdir()
        src = cfg.sources.get(step.layer.source or "")
        if isinstance(src, StandinSource):
            standin.build_standin(
                src,
                entry / LAYER_IMAGE,
                build_user=cfg.build.build_user,
                key=key,
                deb_cache=art.debs,
                log=log,
            )
            image_name = LAYER_IMAGE
        else:
            image_name = _packer_layer(cfg, art, plan, step, key, accelerator, tmp, entry, log)
        image = entry / image_name
        facts: dict[str, Any] = {
            "name": step.layer.name,
            "key": step.key,
            "image": image_name,
            "parent": plan.steps[step.index - 1].key if step.index else None,
            "built_at": provenance.now(),
            "build_seconds": round(timer.seconds, 1),
            "accelerator": accelerator,
            "sha256": sha256_file(image),
            "size": image.stat().st_size,
            "log": log.name,
        }
        if step.layer.seal:
            _write_manifest(cfg, art, plan, step, facts, entry, started)
        cache.commit(step.key, entry, step.inputs, facts)


def _packer_layer(
    cfg: Config,
    art: Artifacts,
    plan: Plan,
    step: Step,
    key: BuildKey,
    accelerator: str,
    tmp: Path,
    entry: Path,
    log: Path,
) -> str:
    serial = art.logs / f"{plan.family.name}-{step.layer.name}-{step.short}.serial.log"
    common: dict[str, Any] = {
        "output_dir": str(tmp / "out"),
        "vm_name": LAYER_IMAGE,
        "accelerator": accelerator,
        "cpus": cfg.build.cpus,
        "memory_mib": cfg.build.memory_mib,
        "ssh_username": cfg.build.build_user,
        "ssh_private_key_file": str(key.private),
        "ssh_timeout": cfg.build.ssh_timeout,
        "serial_log": str(serial),
    }
    src = cfg.sources.get(step.layer.source or "")
    if isinstance(src, IsoSource):
        iso_path = iso.fetch_iso(src, art.root / "sources", str(cfg.path))
        http_dir = tmp / "http"
        http_dir.mkdir()
        common |= install.packer_variables(cfg, step.layer, src, iso_path, http_dir, key)
    else:
        common |= _layer_variables(cfg, art, plan, step, tmp)
    run_ = packer.PackerRun(
        template_of(step.layer), common, tmp / "packer", log, serial, cfg.build.ssh_timeout
    )
    packer.build(run_, on_step=progress.detail)
    overlay = tmp / "out" / LAYER_IMAGE
    if step.index == 0:
        os.rename(overlay, entry / LAYER_IMAGE)
        return LAYER_IMAGE
    if not step.layer.seal:
        # Relative backing path: the cache stays valid if artifacts/ is moved.
        parent = plan.steps[step.index - 1]
        rel = Path("..") / parent.key / art.cache.facts(parent.key)["image"]
        run(["qemu-img", "rebase", "-u", "-F", "qcow2", "-b", str(rel), str(overlay)])
        os.rename(overlay, entry / LAYER_IMAGE)
        return LAYER_IMAGE
    progress.detail("scanning the sealed disk for the build credential")
    leaks = seal.find_secret(
        overlay, {"build public key": key.blob, "build public key (base64)": _b64(key)}, tmp
    )
    if leaks:
        raise BuildError(f"sealed image still contains: {', '.join(leaks)}; not publishing it")
    progress.detail(f"flattening (compression: {cfg.build.compression})")
    seal.flatten(overlay, entry / SEALED_IMAGE, compression=cfg.build.compression)
    return SEALED_IMAGE


def _layer_variables(
    cfg: Config, art: Artifacts, plan: Plan, step: Step, tmp: Path
) -> dict[str, Any]:
    """Variables of a layer built on its parent's disk: files to upload, scripts, env."""
    parent = plan.steps[step.index - 1]
    parent_facts = art.cache.facts(parent.key)
    parent_image = art.cache.entry(parent.key) / parent_facts["image"]
    files = tmp / "files"
    files.mkdir()
    (files / "README").write_text(f"Inputs of layer {step.layer.name} ({step.key}).\n")
    for path in step.layer.files:
        dest = files / path.name
        (shutil.copytree if path.is_dir() else shutil.copy2)(path, dest)
    env = {
        "IF_LAYER": step.layer.name,
        "IF_FILES": packer.FILES_TARGET,
        **{k: str(v) for k, v in step.layer.variables.items()},
    }
    if step.layer.per_family:
        env["IF_FAMILY"] = plan.family.name
    shutdown = "sudo systemctl poweroff"
    reboot = _reboot_variables(step.layer, files)
    if step.layer.seal:
        shutdown = f"sudo /bin/bash {packer.FILES_TARGET}/{SEAL_FINALIZE} {cfg.build.build_user}"
    return {
        "parent_image": str(parent_image),
        "parent_sha256": parent_facts["sha256"],
        "disk_size_mib": int(seal.image_info(parent_image)["virtual-size"]) // (1024 * 1024),
        "files_dir": str(files),
        "files_target": packer.FILES_TARGET,
        "scripts": [str(p) for p in step.layer.scripts],
        "env_vars": [f"{k}={v}" for k, v in sorted(env.items())],
        "shutdown_command": shutdown,
        # The family's root layer decides: a UEFI-installed disk boots only with OVMF.
        "uefi_firmware": install.uefi_firmware(install.firmware_of(cfg, plan.family.name)),
        **reboot,
    }


def _reboot_variables(layer: LayerDef, files: Path) -> dict[str, Any]:
    """A layer with `reboot: true` records /etc, reboots, runs its scripts a second time
    and fails if that second run changed anything; the template runs these commands."""
    if not layer.reboot:
        return {
            "reboot_inline": ["true"],
            "after_reboot_inline": ["true"],
            "after_reboot_pause": "0s",
        }
    staged = files / ".layer"
    (staged / "scripts").mkdir(parents=True)
    shutil.copy2(IDEMPOTENCE_CHECK, staged / IDEMPOTENCE_CHECK.name)
    for script in layer.scripts:
        shutil.copy2(script, staged / "scripts" / script.name)
    guest = f"{packer.FILES_TARGET}/.layer"
    check = f"/bin/bash {guest}/{IDEMPOTENCE_CHECK.name}"
    state = f"{guest}/etc.state"
    rerun = [
        f"echo 'second run after the reboot: {s.name}' && /bin/bash {guest}/scripts/{s.name}"
        for s in layer.scripts
    ]
    return {
        # The template runs inline commands with plain bash: no -e unless we say so.
        "reboot_inline": ["set -euo pipefail", f"{check} record {state}", "systemctl reboot"],
        "after_reboot_inline": [
            "set -euo pipefail",
            *rerun,
            f"{check} compare {state}",
            f"rm -rf {guest}",
        ],
        # The old system may still answer SSH for a moment after `systemctl reboot`.
        "after_reboot_pause": "15s",
    }


def _b64(key: BuildKey) -> bytes:
    return base64.b64encode(key.blob)


def _write_manifest(
    cfg: Config,
    art: Artifacts,
    plan: Plan,
    step: Step,
    facts: dict[str, Any],
    entry: Path,
    started: str,
) -> None:
    cache = art.cache
    layers = []
    for s in plan.steps[:-1]:
        f = cache.facts(s.key)
        layers.append(
            {
                "name": s.layer.name,
                "key": s.key,
                "built_at": f["built_at"],
                "build_seconds": f["build_seconds"],
            }
        )
    layers.append(
        {
            "name": step.layer.name,
            "key": step.key,
            "built_at": facts["built_at"],
            "build_seconds": facts["build_seconds"],
        }
    )
    info = seal.image_info(entry / facts["image"])
    manifest = {
        "schema": 1,
        "family": plan.family.name,
        "os": plan.family.os,
        # How a VM must boot the image: "uefi" needs OVMF (read-only code is enough, no
        # NVRAM: install.OVMF_CODE), "bios" the default SeaBIOS. verify boots it this way.
        "firmware": install.firmware_of(cfg, plan.family.name),
        "image": {
            "file": f"{plan.family.name}.qcow2",
            "sha256": facts["sha256"],
            "size": facts["size"],
            "format": "qcow2",
            "virtual_size": info["virtual-size"],
            "compression": cfg.build.compression,
        },
        "layers": layers,
        "tools": step.inputs.get("tools", {}),
        "git": provenance.git_state(cfg.root),
        "build": {
            "started": started,
            "finished": provenance.now(),
            "host": provenance.host(),
            "accelerator": facts["accelerator"],
        },
        "packages": None,
        "compliance": None,
        "verification": None,
    }
    write_json_atomic(entry / "manifest.json", manifest)


def _publish_local(art: Artifacts, plan: Plan) -> tuple[Path, Path]:
    """Expose the sealed image as artifacts/images/<family>/ (hard links, swapped in whole)."""
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
