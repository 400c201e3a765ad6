"""Invoke tasks: thin wrappers, one imagefactory call each. `invoke --list` shows them.

Defaults (config file, artifacts directory) come from invoke.yaml; no secrets live there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from invoke import Collection, Context, Exit, task

from imagefactory import commands
from imagefactory.errors import FactoryError

CONFIG_HELP = "configuration file (default: factory.yaml; stand-in families: standin.yaml)"


def _paths(c: Context, config: str | None) -> tuple[Path, Path]:
    return Path(config or c.config.factory.config), Path(c.config.factory.artifacts)


def _run(fn: Callable[..., object], *args: object) -> object:
    """Call one imagefactory command; its errors become one message and an exit code."""
    try:
        return fn(*args)
    except FactoryError as err:
        raise Exit(f"error: {err}", code=err.exit_code) from None
    except KeyboardInterrupt:
        raise Exit("interrupted: the cache is unchanged", code=130) from None


@task(help={"family": "family to plan", "config": CONFIG_HELP})
def plan(c: Context, family: str, config: str | None = None) -> None:
    """Show each layer of a family: its key, cached or why it must be built (read-only)."""
    cfg, art = _paths(c, config)
    print(_run(commands.plan, cfg, family, art))


@task(help={"family": "family to build; several, comma-separated, build in parallel",
            "config": CONFIG_HELP})
def build(c: Context, family: str, config: str | None = None) -> None:
    """Build families' missing layers, seal them, write image + manifest to artifacts/images/."""
    cfg, art = _paths(c, config)
    _run(commands.build_families, cfg, [f.strip() for f in family.split(",") if f.strip()], art)


@task(help={"family": "family whose sealed image to verify", "config": CONFIG_HELP})
def verify(c: Context, family: str, config: str | None = None) -> None:
    """Boot a family's sealed image under QEMU and run its testinfra specs over SSH."""
    cfg, art = _paths(c, config)
    result = _run(commands.verify, cfg, family, art)
    print(f"{family}: {result.tests} specs passed (report: {result.report})")  # type: ignore[attr-defined]


@task(help={"config": CONFIG_HELP})
def doctor(c: Context, config: str | None = None) -> None:
    """Check build-host prerequisites and name the install command for each missing one."""
    ok, report = _run(commands.doctor, *_paths(c, config))  # type: ignore[misc]
    print(report)
    if not ok:
        raise Exit("some required prerequisites are missing (see above)", code=1)


@task(help={"family": "family to publish", "channel": "channel to point at it (default nightly)",
            "allow_unverified": "publish although verification did not pass (recorded)",
            "config": CONFIG_HELP})
def publish(c: Context, family: str, channel: str = "nightly", allow_unverified: bool = False,
            config: str | None = None) -> None:
    """Publish a family's verified sealed image to the store, signed, and move a channel."""
    cfg, art = _paths(c, config)
    print(_run(commands.publish, cfg, family, art, channel, allow_unverified))


@task(help={"family": "only this family", "config": CONFIG_HELP})
def images(c: Context, family: str | None = None, config: str | None = None) -> None:
    """List published families, versions, channels, sizes and compliance scores."""
    print(_run(commands.images, _paths(c, config)[0], family))


@task(help={"family": "family", "version": "published version", "channel": "channel to move",
            "config": CONFIG_HELP})
def promote(c: Context, family: str, version: str, channel: str,
            config: str | None = None) -> None:
    """Point a channel (nightly, stable, ...) at a published version; history is kept."""
    print(_run(commands.promote, _paths(c, config)[0], family, version, channel))


@task(help={"keep": "versions to keep per family (plus every channel target)",
            "apply": "really delete (default: dry run)", "config": CONFIG_HELP})
def prune(c: Context, keep: int = 5, apply: bool = False, config: str | None = None) -> None:
    """Remove old published versions no channel points to (dry run unless --apply)."""
    print(_run(commands.prune, _paths(c, config)[0], keep, apply))


@task(help={"family": "family to pull", "channel": "channel to follow (default stable)",
            "version": "exact version instead of a channel", "config": CONFIG_HELP})
def pull(c: Context, family: str, channel: str = "stable", version: str | None = None,
         config: str | None = None) -> None:
    """On a hypervisor: download, verify (signature, sha256) and install a template read-only."""
    print(_run(commands.pull, _paths(c, config)[0], family, None if version else channel,
               version))


@task(help={"out": "output directory (default: hardening/generated, which the harden layer uses)"})
def tailor(c: Context, out: str = "hardening/generated") -> None:
    """Derive the OL8 CIS L1 tailoring and bash/Ansible fixes from the pinned SSG datastreams."""
    print(_run(commands.hardening_tailor, Path(out)))


@task(help={"out": "output directory for coverage.json and coverage.txt"})
def coverage(c: Context, out: str = "artifacts/hardening") -> None:
    """Report CIS L1 Server coverage: SSG rule, our script, waiver, or not covered."""
    print(_run(commands.hardening_coverage, Path(out)))


ns = Collection(plan, build, verify, doctor, publish, images, promote, prune, pull,
                Collection("hardening", tailor, coverage))
