"""`invoke nightly`: plan -> build -> verify -> publish -> move the channel, for each family.

A night with nothing new builds nothing (every layer cached), boots nothing (the sealed image
is the one verified before) and publishes nothing (the channel already points at an image
with these bytes), and says so. One family failing does not stop the others; the exit code
says whether any failed. Reports of the run (junit, compliance HTML and ARF, SBOM, changelog,
summary.md) go to one directory, named in the summary.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagefactory.config import Config, Family, load_config, load_store_settings
from imagefactory.engine.build import build_family
from imagefactory.engine.context import Artifacts
from imagefactory.engine.plan import Plan
from imagefactory.engine.remote import RemoteCache
from imagefactory.errors import FactoryError
from imagefactory.report import published
from imagefactory.report.nightlymetrics import FamilyNight, ImageFacts, nightly_metrics
from imagefactory.store import api
from imagefactory.util import progress
from imagefactory.util.fsutil import write_atomic

Verify = Callable[[Path, str, Path], object]


@dataclass(frozen=True)
class Outcome:
    """One family's night."""

    family: str
    state: str  # "no-op" | "published" | "failed"
    detail: str
    version: str = ""
    image: ImageFacts | None = None  # the image the channel has after the night (metrics)


@dataclass(frozen=True)
class NightlyReport:
    outcomes: tuple[Outcome, ...]
    reports: Path
    seconds: float

    @property
    def ok(self) -> bool:
        return all(o.state != "failed" for o in self.outcomes)

    def summary(self) -> str:
        lines = [f"nightly: {len(self.outcomes)} famil{'y' if len(self.outcomes) == 1 else 'ies'}"]
        for o in self.outcomes:
            sep = " " if o.state == "failed" else ": "  # "failed at build: ..."
            lines.append(f"  {o.family}: {o.state}{sep}{o.detail}")
        lines.append(f"reports: {self.reports}")
        lines.append(f"wall time: {self.seconds:.1f} s; {'ok' if self.ok else 'FAILED'}")
        return "\n".join(lines)

    def markdown(self) -> str:
        rows = "\n".join(
            f"| {o.family} | {o.state} | {o.version or '-'} | {o.detail} |" for o in self.outcomes
        )
        state = "all families ok" if self.ok else "**a family failed**"
        return (
            f"## Nightly image build: {state}\n\n| family | result | version | details |\n"
            f"|---|---|---|---|\n{rows}\n\nReports: `{self.reports}`; "
            f"wall time {self.seconds:.1f} s.\n"
        )


@dataclass(frozen=True)
class Night:
    """One night's run state, read by every family's night (as BuildContext is a build's)."""

    config: Path  # the config file: the store settings and verify read it again
    artifacts: Path
    channel: str
    reports: Path
    remote: bool  # use the store as a remote layer cache
    verify: Verify  # verify(config, family, artifacts): boots and checks a sealed image
    metrics_dir: Path | None = None  # node_exporter's textfile directory; None: no metrics


def default_reports_dir(artifacts: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return artifacts / "reports" / f"nightly-{stamp}"


def run_nightly(night: Night, families: list[str]) -> NightlyReport:
    """Every family's night in turn (each builds its own layers; shared ones once)."""
    start = time.monotonic()
    cfg = load_config(night.config)
    names = sorted(cfg.families) if families in ([], ["all"]) else families
    fams = [cfg.family(name) for name in names]  # an unknown one fails before anything starts
    night.reports.mkdir(parents=True, exist_ok=True)
    outcomes, times = [], []
    for fam in fams:
        began = time.monotonic()
        with progress.prefixed(fam.name):
            outcomes.append(_one_family(night, cfg, fam))
        times.append((time.monotonic() - began, time.time()))
    report = NightlyReport(tuple(outcomes), night.reports, time.monotonic() - start)
    write_atomic(night.reports / "summary.md", report.markdown())
    if night.metrics_dir is not None:
        nights = [
            FamilyNight(o.family, o.state != "failed", took, ended, o.image)
            for o, (took, ended) in zip(outcomes, times, strict=True)
        ]
        nightly_metrics(night.metrics_dir, nights, report.seconds, time.time())
    return report


def _one_family(night: Night, cfg: Config, fam: Family) -> Outcome:
    family, channel, reports = fam.name, night.channel, night.reports
    step = "plan"
    try:
        art = Artifacts(night.artifacts.resolve())
        cache = RemoteCache.for_config(cfg, night.remote)
        step = "build"
        result = build_family(cfg, fam, art, cache)
        why = _why(result.plan, result.built, result.fetched)
        sealed = art.images(family)
        step = "publish"
        store = load_store_settings(night.config)  # with IMAGEFACTORY_STORE_* overrides
        current = api.channel_image_sha256(store, family, channel)
        sha = json.loads((sealed / "manifest.json").read_text())["image"]["sha256"]
        if current == sha:  # published (so verified) before: nothing to boot or upload
            _copy_reports(sealed, reports / family)
            what = "nothing changed" if not (result.built or result.fetched) else why
            version = api.channel_versions(store, [family], channel)[family]
            return Outcome(
                family,
                "no-op",
                f"{what}; {channel} already has this image (sha256 {sha[:12]}), "
                "not verified again, nothing published",
                image=_facts(version, sealed),
            )
        step = "verify"
        if not _verified(sealed):
            night.verify(night.config, family, night.artifacts)
        _copy_reports(sealed, reports / family)
        step = "publish"
        extra = published.changelog_reports(store, family, channel, sealed / "manifest.json")
        # What the manifests cannot tell: why the engine rebuilt (the plan's reasons).
        extra["changelog.md"] += f"\n## Why this build\n\n{why}\n".encode()
        for name, data in extra.items():
            (reports / family / name).write_bytes(data)
        res = api.publish(store, sealed, channel=channel, extra_reports=extra)
        return Outcome(
            family,
            "published",
            f"{why}; published, {channel} -> {res.version}",
            res.version,
            _facts(res.version, sealed),
        )
    except FactoryError as exc:
        return Outcome(family, "failed", f"at {step}: {exc}")
    except Exception as exc:  # one family's bug must not end the night for the others
        progress.warn("".join(traceback.format_exception(exc)))
        return Outcome(family, "failed", f"at {step}: {type(exc).__name__}: {exc}")


def _why(plan: Plan, built: tuple[str, ...], fetched: tuple[str, ...]) -> str:
    if built:
        first = next(s for s in plan.steps if s.layer.name == built[0])
        return f"rebuilt from layer {first.layer.name} because {'; '.join(first.reasons)}"
    if fetched:
        return f"fetched {', '.join(fetched)} from the store"
    return "every layer cached"


def _facts(version: str, sealed: Path) -> ImageFacts:
    """Size, CIS score and layer build times of the image, from its (verified) manifest."""
    return ImageFacts.from_manifest(version, json.loads((sealed / "manifest.json").read_text()))


def _verified(sealed: Path) -> bool:
    """The exported image was verified (verify records it in the manifest beside it)."""
    try:
        doc: dict[str, Any] = json.loads((sealed / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    ver = doc.get("verification")
    return isinstance(ver, dict) and ver.get("passed") is True


def _copy_reports(sealed: Path, dest: Path) -> None:
    """The sealed dir's reports (junit, compliance HTML and ARF, SBOM) and its manifest."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in sealed.iterdir():
        if path.is_file() and not path.name.endswith(".qcow2"):
            shutil.copy2(path, dest / path.name)
