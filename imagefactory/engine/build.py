"""Build a family: plan, then build each missing layer in order and export the sealed image.

Each layer is built in a temp directory and renamed into the cache only when complete, under
a lock on its key; a failure or Ctrl-C leaves the cache exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagefactory.config import Config, Family
from imagefactory.engine import integrity
from imagefactory.engine.cache import LayerCache
from imagefactory.engine.context import Artifacts, BuildContext, LayerBuild
from imagefactory.engine.output import export_image, write_manifest
from imagefactory.engine.plan import Plan, Reuse, Step, make_plan
from imagefactory.engine.remote import RemoteCache, fetch_layer, push_layer
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
    fetched: tuple[str, ...] = ()  # layers taken from the remote layer cache


@dataclass
class _Done:
    """What a build did so far, over its plans (a layer from the store it cannot use makes
    it plan again)."""

    built: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)


def plan_family(
    cfg: Config, family: Family, art: Artifacts, remote: RemoteCache | None = None
) -> Plan:
    keys = remote.keys if remote is not None else frozenset()
    return make_plan(cfg, family, Reuse(art.cache, keys), ensure_build_credential(art.credentials))


def build_family(
    cfg: Config, family: Family, art: Artifacts, remote: RemoteCache | None = None
) -> BuildResult:
    """Build whatever the plan says is missing; a no-op when every layer is cached. With a
    remote layer cache, layers it holds are fetched instead, and built layers are pushed."""
    credential = ensure_build_credential(art.credentials)
    for stale in art.cache.clean_stale_staging():
        progress.detail(f"removed {stale.name}: left by a build that is gone")
    in_store = remote.keys if remote is not None else frozenset()
    done = _Done()
    while True:  # planned again only when a layer from the store cannot be used
        plan = make_plan(cfg, family, Reuse(art.cache, in_store), credential)
        if evict_corrupt(art.cache, plan):  # then plan again: those layers are to be built now
            plan = make_plan(cfg, family, Reuse(art.cache, in_store), credential)
        ctx = BuildContext(cfg, art, plan.family, plan.firmware, credential, provenance.now())
        for step in plan.todo:  # sources first: a missing DVD fails before any VM starts
            step.recipe.prepare(ctx)
        # Then the layers' required variables, still before any VM: the DVD is needed in any
        # case (kept once fetched), and on a host without it, its message is the one that helps.
        check_buildable(plan.todo)
        unusable = _run_steps(ctx, plan, remote, done)
        if unusable is None:
            break
        in_store = in_store - {unusable}
    for step in plan.steps:
        art.cache.set_ref(plan.family.name, step.layer.name, step.key)
    with art.cache.lock(f"images-{family.name}"):  # two builds of one family swap it in turn
        image, manifest = export_image(art, plan)
    said = [f"built {', '.join(done.built)}"] if done.built else []
    said += [f"fetched {', '.join(done.fetched)}"] if done.fetched else []
    progress.say(f"==> {family.name}: {image} ({'; '.join(said) or 'up to date'})")
    return BuildResult(plan, tuple(done.built), image, manifest, tuple(done.fetched))


def _run_steps(
    ctx: BuildContext, plan: Plan, remote: RemoteCache | None, done: _Done
) -> str | None:
    """Fetch, build and push the plan's layers in order; the key of a layer from the store
    that could not be used (the caller plans again without it), else None."""
    todo = {s.key for s in plan.todo}
    for step in plan.steps:
        if step.fetch and remote is not None:
            problem = fetch_layer(ctx, plan, step, remote)
            if problem is not None:
                progress.warn(
                    f"layer {plan.label(step)} from the store: {problem}; building it here"
                )
                return step.key
            done.fetched.append(step.layer.name)
        elif step.key not in todo:
            if step.cached:
                progress.say(f"==> {plan.label(step)}  cached")
                if remote is not None and not step.in_store:  # built before it was shared
                    push_layer(ctx, plan, step, remote)
        elif build_layer(ctx, plan, step):
            done.built.append(step.layer.name)
            if remote is not None:
                push_layer(ctx, plan, step, remote)
    return None


def evict_corrupt(cache: LayerCache, plan: Plan) -> bool:
    """Hash the cached layers this build will use (the chain under the first layer to build,
    or the sealed image itself) against their records; a corrupt one is removed from the
    cache with everything built on it, said plainly, and built again. True if any was."""
    todo = plan.todo
    used = plan.steps[: todo[0].index] if todo else (plan.final,)
    for step in (s for s in used if s.cached):  # not those to fetch: checked as they arrive
        problem = integrity.image_problem(cache, step.key)
        if problem is not None:
            gone = integrity.evict(cache, step.key)
            progress.warn(
                f"layer {step.layer.name} {step.short} is corrupt in the cache ({problem}); "
                f"removed it and {len(gone) - 1} layer(s) built on it, building them again"
            )
            return True
    return False


def check_buildable(steps: tuple[Step, ...]) -> None:
    """Every layer to build has its required variables (before anything starts)."""
    problems = [p for step in steps for p in step.missing]
    if problems:
        raise ConfigError(problems)


def build_layer(ctx: BuildContext, plan: Plan, step: Step) -> bool:
    """Build one layer unless it was built meanwhile; True if this call built it."""
    label = plan.label(step)
    cache = ctx.artifacts.cache
    with cache.lock(step.key):
        parent = plan.parent(step)
        if cache.has(step.key):
            if plan.fits_parent(step, cache.facts(step.key).get("parent_sha256"), cache.sha256):
                progress.say(f"==> {label}  cached (built meanwhile by another build)")
                return False
            progress.say(f"==> {label}  cached on other bytes of its parent: replacing it")
            for key in integrity.evict(cache, step.key, holding_lock=True)[1:]:
                progress.detail(f"removed {key[:12]}, built on it")
        accelerator = _accelerator(ctx, step)
        log = ctx.artifacts.logs / f"{ctx.family.name}-{step.layer.name}-{step.short}.log"
        ctx.artifacts.logs.mkdir(parents=True, exist_ok=True)
        log.unlink(missing_ok=True)
        why = "; ".join(step.reasons)
        with progress.step(f"{label}  building ({why}) [{accelerator}]") as timer:
            progress.detail(f"log: {log}")
            with cache.staging(step.key) as tmp:
                parent_key = parent.key if parent else None
                run = LayerBuild(
                    ctx, step.layer.name, step.key, parent_key, accelerator, tmp, log, timer
                )
                commit_layer(run, plan, step)
    return True


def _accelerator(ctx: BuildContext, step: Step) -> str:
    """Probed only when a VM is about to run: a build whose missing layers need none (only
    the stand-in root) never waits for the KVM probe."""
    if not step.recipe.kind.runs_vm:
        return "-"
    build = ctx.cfg.build
    return accel.choose(
        build.accelerator, build.kvm_probe_timeout_s, (ctx.artifacts.debs,)
    ).accelerator


def commit_layer(run: LayerBuild, plan: Plan, step: Step) -> None:
    """Build the layer in its staging directory and commit it to the cache with its facts."""
    run.entry.mkdir()
    image_name = step.recipe.build(run)
    image = run.entry / image_name
    facts: dict[str, Any] = {
        "name": step.layer.name,
        "key": step.key,
        "image": image_name,
        "parent": run.parent_key,
        # the exact bytes it was built on: a child of a rebuilt parent is never reused
        "parent_sha256": (
            run.ctx.artifacts.cache.facts(run.parent_key)["sha256"] if run.parent_key else None
        ),
        "built_at": provenance.now(),
        "build_seconds": round(run.timer.seconds, 1),
        "accelerator": run.accelerator,
        "sha256": sha256_file(image),
        "size": image.stat().st_size,
        "log": run.log.name,
    }
    if step.recipe.kind.standalone:
        write_manifest(run, plan, facts)
    run.ctx.artifacts.cache.commit(step.key, run.entry, step.inputs, facts)
