"""Build a family: plan, then build each missing layer in order and export the sealed image.

Each layer is built in a temp directory and renamed into the cache only when complete, under
a lock on its key; a failure or Ctrl-C leaves the cache exactly as it was.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagefactory.choices import LayerKind
from imagefactory.config import Config
from imagefactory.engine.context import Artifacts, BuildContext, LayerBuild
from imagefactory.engine.output import export_image, write_manifest
from imagefactory.engine.plan import Plan, Step, make_plan
from imagefactory.errors import ConfigError
from imagefactory.guest import accel
from imagefactory.guest.credential import ensure_build_credential
from imagefactory.util import progress, provenance
from imagefactory.util.fsutil import sha256_file


@dataclass(frozen=True)
class BuildResult:
    plan: Plan
    built: tuple[str, ...]
    image: Path
    manifest: Path


def plan_family(cfg: Config, family: str, art: Artifacts) -> Plan:
    return make_plan(cfg, family, art.cache, ensure_build_credential(art.credentials))


def build_family(cfg: Config, family: str, art: Artifacts) -> BuildResult:
    """Build whatever the plan says is missing; a no-op when every layer is cached."""
    credential = ensure_build_credential(art.credentials)
    plan = make_plan(cfg, family, art.cache, credential)
    ctx = BuildContext(cfg, art, plan.family, plan.firmware, credential, provenance.now())
    check_buildable(plan)
    todo = {s.key for s in plan.todo}
    for step in plan.todo:  # sources first: a missing DVD fails before any VM starts
        step.recipe.prepare(ctx)
    built = [s.layer.name for s in plan.steps if build_layer(ctx, plan, s, s.key in todo)]
    for step in plan.steps:
        art.cache.set_ref(plan.family.name, step.layer.name, step.key)
    with art.cache.lock(f"images-{family}"):  # two builds of one family swap the dir in turn
        image, manifest = export_image(art, plan)
    done = f"built {', '.join(built)}" if built else "up to date"
    progress.say(f"==> {family}: {image} ({done})")
    return BuildResult(plan, tuple(built), image, manifest)


def check_buildable(plan: Plan) -> None:
    """Every layer to build has its required variables (before anything starts)."""
    problems = [p for step in plan.todo for p in step.missing]
    if problems:
        raise ConfigError(problems)


def build_layer(ctx: BuildContext, plan: Plan, step: Step, needed: bool) -> bool:
    """Build one layer if needed and not built meanwhile; True if this call built it."""
    label = f"[{step.index + 1}/{len(plan.steps)}] {step.layer.name} {step.short}"
    if not needed:
        progress.say(f"==> {label}  cached")
        return False
    cache = ctx.artifacts.cache
    with cache.lock(step.key):
        if cache.has(step.key):
            progress.say(f"==> {label}  cached (built meanwhile by another build)")
            return False
        # Probed only when a VM is about to run: a build whose missing layers need none
        # (only the stand-in root) never waits for the KVM probe.
        accelerator = "-"
        if step.recipe.kind.runs_vm:
            build = ctx.cfg.build
            choice = accel.choose(
                build.accelerator, build.kvm_probe_timeout_s, (ctx.artifacts.debs,)
            )
            accelerator = choice.accelerator
        why = "; ".join(step.reasons)
        with progress.step(f"{label}  building ({why}) [{accelerator}]") as timer:
            commit_layer(plan, step, _layer_build(ctx, plan, step, accelerator, timer))
    return True


def _layer_build(
    ctx: BuildContext, plan: Plan, step: Step, accelerator: str, timer: progress.Timer
) -> LayerBuild:
    """A layer build before its staging directory exists (commit_layer makes it)."""
    log = ctx.artifacts.logs / f"{ctx.family.name}-{step.layer.name}-{step.short}.log"
    parent = plan.parent(step)
    key = parent.key if parent else None
    return LayerBuild(ctx, step.layer.name, step.key, key, accelerator, Path(), log, timer)


def commit_layer(plan: Plan, step: Step, pending: LayerBuild) -> None:
    """Build the layer in a staging directory and commit it to the cache with its facts."""
    ctx = pending.ctx
    cache = ctx.artifacts.cache
    ctx.artifacts.logs.mkdir(parents=True, exist_ok=True)
    pending.log.unlink(missing_ok=True)
    progress.detail(f"log: {pending.log}")
    with cache.staging(step.key) as tmp:
        run = dataclasses.replace(pending, tmp=tmp)
        run.entry.mkdir()
        image_name = step.recipe.build(run)
        image = run.entry / image_name
        facts: dict[str, Any] = {
            "name": step.layer.name,
            "key": step.key,
            "image": image_name,
            "parent": run.parent_key,
            "built_at": provenance.now(),
            "build_seconds": round(run.timer.seconds, 1),
            "accelerator": run.accelerator,
            "sha256": sha256_file(image),
            "size": image.stat().st_size,
            "log": run.log.name,
        }
        if step.recipe.kind is LayerKind.SEAL:
            write_manifest(run, plan, facts)
        cache.commit(step.key, run.entry, step.inputs, facts)
