"""One function per user-facing command; tasks.py only parses flags and calls these."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from imagefactory.config import Config, Family, load_config, load_store_settings
from imagefactory.doctor import directory_problem, render, run_checks
from imagefactory.engine import integrity
from imagefactory.engine.build import BuildResult, build_family
from imagefactory.engine.context import Artifacts
from imagefactory.engine.plan import Plan, Reuse, make_plan
from imagefactory.engine.remote import RemoteCache
from imagefactory.errors import FactoryError
from imagefactory.guest import accel, packer
from imagefactory.guest.credential import (
    MissingCredential,
    ensure_build_credential,
    load_build_credential,
)
from imagefactory.util import progress
from imagefactory.util.paths import REPO
from imagefactory.util.sourcetree import hashing_rule, in_checkout
from imagefactory.verify import VerifyResult, verify_image

HARDENING = Path(__file__).resolve().parent.parent / "hardening"


class UsageError(FactoryError):
    """A command given arguments it cannot act on (exit 2, as for bad configuration)."""

    exit_code = 2


def _artifacts(path: Path, writable: bool = True) -> Artifacts:
    """The artifacts directory, refused with one clear error when it cannot serve: a command
    that writes needs it writable (or creatable), a read-only one a directory or nothing."""
    problem = directory_problem(path, writable)
    if problem is not None:
        raise FactoryError(
            f"artifacts directory {path}: {problem}"
            " (hint: point factory.artifacts in invoke.yaml, or INVOKE_FACTORY_ARTIFACTS,"
            " at a writable directory)"
        )
    return Artifacts(path.resolve())


def _read_only_plan(
    cfg: Config, family: Family, art: Artifacts, remote: RemoteCache | None = None
) -> Plan:
    """The family's plan without writing anything. Before the first build there is no build
    credential, whose fingerprint is an input of the root layer: the plan then keys the
    layers with a placeholder and says why the root layer (hence every layer) is built."""
    credential = load_build_credential(art.credentials)
    in_store = remote.keys if remote is not None else frozenset()
    if credential is not None:  # the same keys as the build's own plan
        return make_plan(cfg, family, Reuse(art.cache, in_store), credential)
    p = make_plan(cfg, family, Reuse(art.cache), MissingCredential(art.credentials, ""))
    root = dataclasses.replace(
        p.steps[0],
        cached=False,
        reasons=(f"no build credential yet: the first build generates it in {art.credentials}",),
    )
    return dataclasses.replace(p, steps=(root, *p.steps[1:]))


def plan(config: Path, family: str, artifacts: Path, remote: bool = True) -> str:
    """The plan of a family as text: every layer, its key, and whether it is cached here, in
    the store (fetched, not built), or to build and why."""
    cfg = load_config(config)
    art = _artifacts(artifacts, writable=False)
    remote_cache = RemoteCache.for_config(cfg, remote, create=False)
    p = _read_only_plan(cfg, cfg.family(family), art, remote_cache)
    todo = {s.key for s in p.todo}
    fetch = f", {len(p.fetches)} from the store" if p.fetches else ""
    lines = [f"family {family} ({len(p.steps)} layers, {len(todo)} to build{fetch})"]
    width = max(len(s.layer.name) for s in p.steps)
    for s in p.steps:
        # Only a layer that is there is "cached"; one below the newest cached layer that is
        # missing is not needed by this build (that layer does not need its parents).
        state = "build " if s.key in todo else "cached" if s.cached else "not needed"
        why = f"  ({'; '.join(s.reasons)})" if s.key in todo else ""
        if s.fetch:
            state, why = "store ", "  (in the store: fetched, not built)"
        elif not s.cached and s.key not in todo:
            why = f"  (a later layer is cached; this one: {'; '.join(s.reasons)})"
        lines.append(f"  {s.layer.name:<{width}}  {s.short}  {state}{why}")
        if s.key in todo:
            lines += [f"  {'':<{width}}  needs {m.path}: {m.hint}" for m in s.missing]
    if not in_checkout(REPO):  # a tarball: ignored files count too, so say how keys hash
        lines.append(f"note: layer keys hash {hashing_rule(REPO)}")
    return "\n".join(lines)


def build(config: Path, family: str, artifacts: Path, remote: bool = True) -> BuildResult:
    """Build a family's missing layers and expose its sealed image under artifacts/images/."""
    return build_families(config, [family], artifacts, remote)[0]


def build_families(
    config: Path, families: list[str], artifacts: Path, remote: bool = True
) -> list[BuildResult]:
    """Build several families at once: shared layers once (the per-layer lock makes the other
    builds wait for them), each family's own layers in parallel. Ctrl-C stops them all."""
    cfg = load_config(config)
    if not families:
        raise UsageError(
            "--family names no family (one, or several comma-separated: --family=A,B;"
            f" known: {', '.join(sorted(cfg.families))})"
        )
    fams = [cfg.family(name) for name in families]  # an unknown one fails before anything starts
    art = _artifacts(artifacts)
    shared = RemoteCache.for_config(cfg, remote)
    if len(fams) == 1:
        return [build_family(cfg, fams[0], art, shared)]

    packer.allow_runs()
    ensure_build_credential(art.credentials)  # made once, before the builds that all read it

    def one(fam: Family) -> BuildResult:
        with progress.prefixed(fam.name):
            return build_family(cfg, fam, art, shared)

    with ThreadPoolExecutor(max_workers=len(fams)) as pool:
        futures = [pool.submit(one, fam) for fam in fams]
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
    art = _artifacts(artifacts)
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
    """(all required prerequisites present, report text). Read-only: creates nothing."""
    from imagefactory.store import api

    cfg = load_config(config)
    try:
        api.open_store(cfg.store, create=False)  # doctor changes nothing: no store dir made
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
    config: Path,
    family: str,
    artifacts: Path,
    channel: str | None,
    allow_unverified: bool,
    catalogue: bool = False,
) -> str:
    """Publish the family's sealed image dir to the configured store and move `channel`;
    with `catalogue`, upload the catalogue page afterwards. Reads only the config's store
    section: the sealed image is all that is published."""
    from imagefactory.store import api

    settings = load_store_settings(config)
    sealed = _artifacts(artifacts, writable=False).images(api.check_name("family", family))
    if not (sealed / "manifest.json").is_file():
        raise FactoryError(
            f"no sealed image for {family} in {sealed}; run: invoke build "
            f"--family={family} && invoke verify --family={family}"
        )
    done = api.describe_publish(
        api.publish(settings, sealed, channel=channel, allow_unverified=allow_unverified)
    )
    return _with_catalogue(config, done, catalogue)


def _with_catalogue(config: Path, done: str, catalogue: bool) -> str:
    """`done` (what a store change did), then the catalogue upload's line; a failed upload
    says the change itself stands."""
    if not catalogue:
        return done
    from imagefactory.report import catalogue as site

    try:
        return f"{done}\n{site.upload_catalogue(load_store_settings(config))}"
    except FactoryError as exc:
        raise FactoryError(
            f"{done}\nbut the catalogue page was not uploaded: {exc} "
            "(hint: run the same task again, or `invoke catalogue` to see the page)"
        ) from None


def catalogue(config: Path, out: Path) -> str:
    """The catalogue site (index.html, a page per family, their reports) written to `out`."""
    from imagefactory.report import catalogue as site

    return site.write_catalogue(load_store_settings(config), out)


# The store tasks below read only the config's store section (config/store_only.py), so a
# hypervisor's store-only file, or a copy of factory.yaml outside the repository, serves them.


def images(config: Path, family: str | None, diff: str | None = None) -> str:
    """Table of published families, versions, channels, sizes and scores; with `diff`
    ("A..B"), the Markdown changelog from version A to version B instead."""
    from imagefactory.report import published
    from imagefactory.store import api

    if diff is None:
        return api.images(load_store_settings(config), family)
    old, new = _diff_versions(diff)
    return published.images_diff(load_store_settings(config), old, new, family)


def _diff_versions(spec: str) -> tuple[str, str]:
    """("A", "B") from --diff=A..B, both version strings; UsageError otherwise."""
    from imagefactory.store import api

    old, sep, new = spec.partition("..")
    if not sep or not api.VERSION_RE.match(old) or not api.VERSION_RE.match(new):
        raise UsageError(
            f"--diff={spec}: expected two published versions as A..B, e.g. "
            "--diff=20261124T101500Z-1a2b3c4d5e6f..20261125T101500Z-6f5e4d3c2b1a"
        )
    return old, new


def promote(config: Path, family: str, version: str, channel: str, catalogue: bool = False) -> str:
    """Point a channel at a published version (the pointer keeps its history); with
    `catalogue`, upload the catalogue page afterwards."""
    from imagefactory.store import api

    done = api.promote_version(load_store_settings(config), family, version, channel)
    return _with_catalogue(config, done, catalogue)


def revoke(config: Path, family: str, version: str, reason: str) -> str:
    """Mark a published version revoked (a signed record): promote and the fleet refuse it."""
    from imagefactory.store import api

    return api.revoke_version(load_store_settings(config), family, version, reason)


def prune(config: Path, keep: int, apply: bool) -> str:
    """Plan (or with apply, do) the removal of old versions no channel points to."""
    from imagefactory.store import api

    return api.prune(load_store_settings(config), keep=keep, apply=apply)


def pull(config: Path, family: str, channel: str | None, version: str | None) -> str:
    """Verify, download and install a template on this hypervisor."""
    from imagefactory.store import api

    return api.describe_pull(
        api.pull(load_store_settings(config), family, channel=channel, version=version)
    )


def store_verify(config: Path, family: str | None, rehash: bool) -> str:
    """Every kept version and channel of the store checked; raises (exit 1) if any is bad."""
    from imagefactory.store import api

    audit = api.verify_store(load_store_settings(config), family, rehash=rehash)
    if not audit.ok:
        raise FactoryError(audit.describe())
    return audit.describe()


def store_remove(config: Path, family: str, version: str, apply: bool) -> str:
    """Plan (or with apply, do) the removal of one version no channel points at."""
    from imagefactory.store import api

    return api.remove_version(load_store_settings(config), family, version, apply=apply)


def nightly(
    config: Path,
    artifacts: Path,
    family: str,
    channel: str,
    reports: Path | None,
    remote: bool,
    metrics_dir: Path | None = None,
) -> str:
    """plan -> build -> verify -> publish -> channel for each family; the summary. Raises
    (exit 1) with the summary when any family failed. With metrics_dir, the night's metrics
    go there (imagefactory_nightly.prom)."""
    from imagefactory import nightly as night
    from imagefactory.report.metrics import check_directory
    from imagefactory.store import api

    if metrics_dir is not None:  # before the night, not after hours of building
        check_directory(metrics_dir)

    names = [f.strip() for f in family.split(",") if f.strip()]
    if not names:
        raise UsageError("--family names no family (all, one, or several: --family=A,B)")
    api.check_name("channel", channel)
    art = _artifacts(artifacts)
    where = reports or night.default_reports_dir(art.root)
    run = night.Night(config, art.root, channel, where, remote, verify, metrics_dir)
    report = night.run_nightly(run, names)
    if not report.ok:
        raise FactoryError(report.summary())
    return report.summary()


def cache_verify(artifacts: Path) -> str:
    """Every cached layer checked against its record; raises (exit 1) if any is bad."""
    cache = Artifacts(artifacts.resolve()).cache
    checks = integrity.verify_all(cache)
    report = integrity.describe(checks, cache.root)
    if any(not c.ok for c in checks):
        raise FactoryError(report)
    return report


def cache_evict(artifacts: Path, *, layer: str | None, family: str | None) -> str:
    """Remove one layer (by key or unique prefix) or a family's own layers, with everything
    built on them. Other families' layers are never touched by --family."""
    cache = Artifacts(artifacts.resolve()).cache
    if (layer is None) == (family is None):
        raise FactoryError("cache.evict: give exactly one of --layer=KEY or --family=NAME")
    if layer is not None:
        roots = [_layer_by_prefix(cache.layer_keys(), layer)]
    else:
        refs = cache.refs()
        if family not in refs:
            known = ", ".join(sorted(refs)) or "none"
            raise FactoryError(f"cache.evict: no build of family {family!r} in the cache ({known})")
        others = {k for f, layers in refs.items() if f != family for k in layers.values()}
        roots = [k for k in refs[family].values() if k not in others and cache.has(k)]
    removed: list[str] = []
    for key in roots:
        removed += [k for k in integrity.evict(cache, key) if k not in removed]
    if not removed:
        return "nothing to remove"
    return f"removed {len(removed)} layer(s): " + ", ".join(k[:12] for k in removed)


def _layer_by_prefix(keys: list[str], prefix: str) -> str:
    if len(prefix) < 12:
        raise FactoryError(f"cache.evict --layer={prefix}: give at least 12 characters of the key")
    found = [k for k in keys if k.startswith(prefix)]
    if len(found) != 1:
        what = "no layer" if not found else f"{len(found)} layers"
        raise FactoryError(f"cache.evict --layer={prefix}: {what} in the cache start with it")
    return found[0]
