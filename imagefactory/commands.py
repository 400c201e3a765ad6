"""One function per user-facing command; tasks.py only parses flags and calls these."""

from __future__ import annotations

from pathlib import Path

from imagefactory import accel
from imagefactory.build import Artifacts, BuildResult, build_family, plan_family
from imagefactory.config import load_config
from imagefactory.doctor import render, run_checks
from imagefactory.errors import FactoryError
from imagefactory.verify import VerifyResult, verify_image


def plan(config: Path, family: str, artifacts: Path) -> str:
    """The plan of a family as text: every layer, its key, cached or why it must be built."""
    cfg = load_config(config)
    p = plan_family(cfg, family, Artifacts(artifacts.resolve()))
    todo = {s.key for s in p.todo}
    lines = [f"family {family} ({len(p.steps)} layers, {len(todo)} to build)"]
    for s in p.steps:
        state = "build " if s.key in todo else "cached"
        why = f"  ({'; '.join(s.reasons)})" if s.key in todo else ""
        lines.append(f"  {s.layer.name:<16} {s.short}  {state}{why}")
    return "\n".join(lines)


def build(config: Path, family: str, artifacts: Path) -> BuildResult:
    """Build a family's missing layers and expose its sealed image under artifacts/images/."""
    return build_family(load_config(config), family, Artifacts(artifacts.resolve()))


def verify(config: Path, family: str, artifacts: Path) -> VerifyResult:
    """Boot the family's sealed image, run its specs, record the result in its manifest."""
    cfg = load_config(config)
    fam = cfg.family(family)
    art = Artifacts(artifacts.resolve())
    out = art.images(family)
    image = out / f"{family}.qcow2"
    if not image.is_file():
        raise FactoryError(f"no sealed image for {family} at {image}; run: invoke build "
                           f"--family={family}")
    choice = accel.choose(cfg.build.accelerator, cfg.build.kvm_probe_timeout_s, (art.debs,))
    result = verify_image(image, out / "manifest.json", fam.specs, art.root / "reports",
                          accelerator=choice.accelerator, label=family)
    if not result.passed:
        raise FactoryError(f"{family}: {result.failed} of {result.tests} specs failed "
                           f"(report: {result.report})")
    return result


def doctor(config: Path, artifacts: Path) -> tuple[bool, str]:
    """(all required prerequisites present, report text)."""
    cfg = load_config(config)
    checks = run_checks(artifacts, cfg.build.accelerator, cfg.build.kvm_probe_timeout_s)
    return all(c.ok for c in checks if c.required), render(checks)
