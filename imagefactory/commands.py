"""One function per user-facing command; tasks.py only parses flags and calls these."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from imagefactory.config import load_config
from imagefactory.doctor import render, run_checks
from imagefactory.engine.build import BuildResult, build_family, plan_family
from imagefactory.engine.context import Artifacts
from imagefactory.errors import FactoryError
from imagefactory.guest import accel, packer
from imagefactory.guest.credential import ensure_build_credential
from imagefactory.util import progress
from imagefactory.verify import VerifyResult, verify_image

HARDENING = Path(__file__).resolve().parent.parent / "hardening"


def plan(config: Path, family: str, artifacts: Path) -> str:
    """The plan of a family as text: every layer, its key, cached or why it must be built."""
    cfg = load_config(config)
    p = plan_family(cfg, family, Artifacts(artifacts.resolve()))
    todo = {s.key for s in p.todo}
    lines = [f"family {family} ({len(p.steps)} layers, {len(todo)} to build)"]
    width = max(len(s.layer.name) for s in p.steps)
    for s in p.steps:
        state = "build " if s.key in todo else "cached"
        why = f"  ({'; '.join(s.reasons)})" if s.key in todo else ""
        lines.append(f"  {s.layer.name:<{width}}  {s.short}  {state}{why}")
        if s.key in todo:
            lines += [f"  {'':<{width}}  needs {m.path}: {m.hint}" for m in s.missing]
    return "\n".join(lines)


def build(config: Path, family: str, artifacts: Path) -> BuildResult:
    """Build a family's missing layers and expose its sealed image under artifacts/images/."""
    return build_families(config, [family], artifacts)[0]


def build_families(config: Path, families: list[str], artifacts: Path) -> list[BuildResult]:
    """Build several families at once: shared layers once (the per-layer lock makes the other
    builds wait for them), each family's own layers in parallel. Ctrl-C stops them all."""
    cfg = load_config(config)
    for name in families:
        cfg.family(name)  # an unknown family fails before anything starts
    art = Artifacts(artifacts.resolve())
    if len(families) == 1:
        return [build_family(cfg, families[0], art)]

    packer.allow_runs()
    ensure_build_credential(art.credentials)  # made once, before the builds that all read it

    def one(name: str) -> BuildResult:
        with progress.prefixed(name):
            return build_family(cfg, name, art)

    with ThreadPoolExecutor(max_workers=len(families)) as pool:
        futures = [pool.submit(one, name) for name in families]
        try:
            wait(futures)
        except BaseException:
            packer.stop_all()
            raise
    errors = [e for e in (f.exception() for f in futures) if e is not None]
    if errors:
        if len(errors) == 1 and isinstance(errors[0], FactoryError):
            raise errors[0]
        raise FactoryError("; ".join(str(e) for e in errors))
    return [f.result() for f in futures]


def verify(config: Path, family: str, artifacts: Path) -> VerifyResult:
    """Boot the family's sealed image, run its specs and scan, record both in its manifest."""
    cfg = load_config(config)
    fam = cfg.family(family)
    art = Artifacts(artifacts.resolve())
    out = art.images(family)
    image = out / f"{family}.qcow2"
    if not image.is_file():
        raise FactoryError(
            f"no sealed image for {family} at {image}; run: invoke build --family={family}"
        )
    choice = accel.choose(cfg.build.accelerator, cfg.build.kvm_probe_timeout_s, (art.debs,))
    result = verify_image(
        image,
        out / "manifest.json",
        fam.specs,
        art.root / "reports",
        accelerator=choice.accelerator,
        label=family,
        scan=fam.compliance,
    )
    if not result.passed:
        raise FactoryError(
            f"{family}: {result.failed} of {result.tests} specs failed (report: {result.report})"
        )
    return result


def doctor(config: Path, artifacts: Path) -> tuple[bool, str]:
    """(all required prerequisites present, report text)."""
    from imagefactory.store import api

    cfg = load_config(config)
    try:
        api.open_store(cfg.store)
        store = ("store", True, f"{cfg.store.kind} store reachable")
    except FactoryError as err:
        store = ("store", False, f"{cfg.store.kind} store: {err}")
    checks = run_checks(artifacts, cfg.build.accelerator, cfg.build.kvm_probe_timeout_s, store)
    return all(c.ok for c in checks if c.required), render(checks)


def hardening_tailor(out_dir: Path) -> str:
    """Derive the OL8 CIS tailoring, fixes and coverage from the pinned SSG; a short summary."""
    from imagefactory.hardening import derive_tailoring, load_pin

    result = derive_tailoring(load_pin(HARDENING / "ssg-pin.yaml"), out_dir=out_dir)
    counts = result.provenance["counts"]
    return (
        f"tailoring: {result.tailoring}\n"
        f"rules: {counts['source_selected']} selected for RHEL8, {counts['kept_in_ol8']} kept "
        f"for OL8, {counts['missing_in_ol8']} missing in OL8 (covered by our scripts), "
        f"{counts['waivers']} waivers, {counts['gaps']} gaps"
    )


def hardening_coverage(out_dir: Path) -> str:
    """CIS L1 Server coverage (SSG rule / our script / waiver / not covered) as a text table."""
    from imagefactory.hardening import load_pin, render_text, write_coverage

    return render_text(write_coverage(load_pin(HARDENING / "ssg-pin.yaml"), out_dir=out_dir))


def publish(
    config: Path, family: str, artifacts: Path, channel: str | None, allow_unverified: bool
) -> str:
    """Publish the family's sealed image dir to the configured store and move `channel`."""
    from imagefactory.store import api

    cfg = load_config(config)
    cfg.family(family)
    sealed = Artifacts(artifacts.resolve()).images(family)
    if not (sealed / "manifest.json").is_file():
        raise FactoryError(
            f"no sealed image for {family} in {sealed}; run: invoke build "
            f"--family={family} && invoke verify --family={family}"
        )
    return api.describe_publish(
        api.publish(cfg.store, sealed, channel=channel, allow_unverified=allow_unverified)
    )


def images(config: Path, family: str | None) -> str:
    """Table of published families, versions, channels, sizes and scores."""
    from imagefactory.store import api

    return api.images(load_config(config).store, family)


def promote(config: Path, family: str, version: str, channel: str) -> str:
    """Point a channel at a published version (the pointer keeps its history)."""
    from imagefactory.store import api

    return api.promote_version(load_config(config).store, family, version, channel)


def prune(config: Path, keep: int, apply: bool) -> str:
    """Plan (or with apply, do) the removal of old versions no channel points to."""
    from imagefactory.store import api

    return api.prune(load_config(config).store, keep=keep, apply=apply)


def pull(config: Path, family: str, channel: str | None, version: str | None) -> str:
    """Verify, download and install a template on this hypervisor."""
    from imagefactory.store import api

    return api.describe_pull(
        api.pull(load_config(config).store, family, channel=channel, version=version)
    )
