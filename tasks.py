"""Invoke tasks: thin wrappers, one imagefactory call each. `invoke --list` shows them."""

from __future__ import annotations

from pathlib import Path

from invoke import Context, Exit, task

from imagefactory import commands
from imagefactory.errors import FactoryError


def _paths(c: Context, config: str | None) -> tuple[Path, Path]:
    return Path(config or c.config.factory.config), Path(c.config.factory.artifacts)


@task(help={"family": "family to plan (see the config's families:)",
            "config": "configuration file (default: factory.yaml)"})
def plan(c: Context, family: str, config: str | None = None) -> None:
    """Show each layer of a family: its key, cached or why it must be built (read-only)."""
    cfg, art = _paths(c, config)
    try:
        print(commands.plan(cfg, family, art))
    except FactoryError as err:
        raise Exit(str(err), code=err.exit_code) from None


@task(help={"family": "family to build", "config": "configuration file (default: factory.yaml)"})
def build(c: Context, family: str, config: str | None = None) -> None:
    """Build a family's missing layers, seal it, and write image + manifest to artifacts/images/."""
    cfg, art = _paths(c, config)
    try:
        commands.build(cfg, family, art)
    except FactoryError as err:
        raise Exit(f"error: {err}", code=err.exit_code) from None
    except KeyboardInterrupt:
        raise Exit("interrupted: the cache is unchanged", code=130) from None


@task(help={"family": "family whose sealed image to verify",
            "config": "configuration file (default: factory.yaml)"})
def verify(c: Context, family: str, config: str | None = None) -> None:
    """Boot a family's sealed image under QEMU and run its testinfra specs over SSH."""
    cfg, art = _paths(c, config)
    try:
        result = commands.verify(cfg, family, art)
    except FactoryError as err:
        raise Exit(f"error: {err}", code=err.exit_code) from None
    print(f"{family}: {result.tests} specs passed (report: {result.report})")


@task(help={"config": "configuration file (default: factory.yaml)"})
def doctor(c: Context, config: str | None = None) -> None:
    """Check build-host prerequisites and name the install command for each missing one."""
    cfg, art = _paths(c, config)
    try:
        ok, report = commands.doctor(cfg, art)
    except FactoryError as err:
        raise Exit(f"error: {err}", code=err.exit_code) from None
    print(report)
    if not ok:
        raise Exit("some required prerequisites are missing (see above)", code=1)
