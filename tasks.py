"""Invoke tasks: thin wrappers, one imagefactory call each. `invoke --list` shows them.

Defaults (config file, artifacts directory) come from invoke.yaml; no secrets live there.
"""

from __future__ import annotations

from pathlib import Path

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from imagefactory import commands
from imagefactory.fleet import commands as fleet_commands
from imagefactory.fleet import rr_commands
from imagefactory.util.taskrun import BUILD_STOPPED, FLEET_STOPPED, run_task

CONFIG_HELP = "configuration file (default: factory.yaml; stand-in families: standin.yaml)"
# The store tasks read only the file's store: section (a hypervisor's file may hold nothing
# else); IMAGEFACTORY_STORE_ENDPOINT / _BUCKET override it (docs/store.md).
STORE_CONFIG_HELP = "configuration file; only its store: section is read (default: factory.yaml)"


def _paths(c: Context, config: str | None) -> tuple[Path, Path]:
    return Path(config or c.config.factory.config), Path(c.config.factory.artifacts)


CATALOGUE_HELP = "afterwards, upload the catalogue page to the store (catalogue/index.html)"


def _metrics_dir(c: Context) -> Path | None:
    """factory.metrics_dir, the one metrics setting (per machine, as node_exporter is)."""
    value = c.config.factory.get("metrics_dir")
    return Path(value) if value else None


NO_REMOTE_HELP = "do not use the store's layer cache (store.layer_cache) for this run"


@task(help={"family": "family to plan", "config": CONFIG_HELP, "no_remote_cache": NO_REMOTE_HELP})
@run_task
def plan(c: Context, family: str, config: str | None = None, no_remote_cache: bool = False) -> None:
    """Show each layer of a family: its key, and cached here, in the store, or why to build."""
    cfg, art = _paths(c, config)
    print(commands.plan(cfg, family, art, remote=not no_remote_cache))


@task(
    help={
        "family": "family to build; several, comma-separated, build in parallel",
        "config": CONFIG_HELP,
        "no_remote_cache": NO_REMOTE_HELP,
    }
)
@run_task(stopped=BUILD_STOPPED)
def build(
    c: Context, family: str, config: str | None = None, no_remote_cache: bool = False
) -> None:
    """Build families' missing layers, seal them, write image + manifest to artifacts/images/."""
    cfg, art = _paths(c, config)
    families = [f.strip() for f in family.split(",") if f.strip()]
    commands.build_families(cfg, families, art, remote=not no_remote_cache)


@task(help={"family": "family whose sealed image to verify", "config": CONFIG_HELP})
@run_task(stopped=BUILD_STOPPED)
def verify(c: Context, family: str, config: str | None = None) -> None:
    """Boot a family's sealed image under QEMU and run its testinfra specs over SSH."""
    cfg, art = _paths(c, config)
    result = commands.verify(cfg, family, art)
    print(f"{family}: {result.tests} specs passed (report: {result.report})")


@task(help={"config": CONFIG_HELP})
@run_task
def doctor(c: Context, config: str | None = None) -> None:
    """Check build-host prerequisites and name the install command for each missing one."""
    ok, report = commands.doctor(*_paths(c, config))
    print(report)
    if not ok:
        raise Exit("some required prerequisites are missing (see above)", code=1)


@task(
    help={
        "family": "family to publish",
        "channel": "channel to point at it (default nightly)",
        "allow_unverified": "publish although verification did not pass (recorded)",
        "catalogue": CATALOGUE_HELP,
        "config": STORE_CONFIG_HELP,
    }
)
@run_task
def publish(
    c: Context,
    family: str,
    channel: str = "nightly",
    allow_unverified: bool = False,
    catalogue: bool = False,
    config: str | None = None,
) -> None:
    """Publish a family's verified sealed image to the store, signed, and move a channel."""
    cfg, art = _paths(c, config)
    print(commands.publish(cfg, family, art, channel, allow_unverified, catalogue))


@task(
    help={
        "family": "only this family (with --diff: the family of both versions)",
        "diff": "A..B: print the changelog from published version A to B instead",
        "config": STORE_CONFIG_HELP,
    }
)
@run_task
def images(
    c: Context, family: str | None = None, diff: str | None = None, config: str | None = None
) -> None:
    """List published families, versions, channels, sizes and compliance scores."""
    print(commands.images(_paths(c, config)[0], family, diff))


@task(
    help={
        "family": "family",
        "version": "published version",
        "channel": "channel to move",
        "catalogue": CATALOGUE_HELP,
        "config": STORE_CONFIG_HELP,
    }
)
@run_task
def promote(
    c: Context,
    family: str,
    version: str,
    channel: str,
    catalogue: bool = False,
    config: str | None = None,
) -> None:
    """Point a channel (nightly, stable, ...) at a published version; history is kept."""
    print(commands.promote(_paths(c, config)[0], family, version, channel, catalogue))


@task(
    help={
        "out": "directory to write the site to (default: artifacts/catalogue)",
        "config": STORE_CONFIG_HELP,
    }
)
@run_task
def catalogue(c: Context, out: str | None = None, config: str | None = None) -> None:
    """Write the store's catalogue as a static site: versions, channels, changelogs, plots."""
    cfg, art = _paths(c, config)
    print(commands.catalogue(cfg, Path(out) if out else art / "catalogue"))


@task(
    help={
        "family": "family",
        "version": "published version to revoke",
        "reason": "why (one line; shown by images and in every refusal)",
        "config": STORE_CONFIG_HELP,
    }
)
@run_task
def revoke(c: Context, family: str, version: str, reason: str, config: str | None = None) -> None:
    """Mark a published version revoked (signed record): promote and the fleet refuse it."""
    print(commands.revoke(_paths(c, config)[0], family, version, reason))


@task(
    help={
        "keep": "versions to keep per family (plus every channel target)",
        "apply": "really delete (default: dry run)",
        "config": STORE_CONFIG_HELP,
    }
)
@run_task
def prune(c: Context, keep: int = 5, apply: bool = False, config: str | None = None) -> None:
    """Remove old published versions no channel points to (dry run unless --apply)."""
    print(commands.prune(_paths(c, config)[0], keep, apply))


@task(
    help={
        "family": "family to pull",
        "channel": "channel to follow (default stable)",
        "version": "exact version instead of a channel",
        "config": STORE_CONFIG_HELP,
    }
)
@run_task
def pull(
    c: Context,
    family: str,
    channel: str = "stable",
    version: str | None = None,
    config: str | None = None,
) -> None:
    """On a hypervisor: download, verify (signature, sha256) and install a template read-only."""
    print(commands.pull(_paths(c, config)[0], family, None if version else channel, version))


@task(
    help={
        "family": "all (default), or families, comma-separated",
        "channel": "channel to publish to and move (default nightly)",
        "reports": "directory for this run's reports (default artifacts/reports/nightly-<time>)",
        "config": CONFIG_HELP,
        "no_remote_cache": NO_REMOTE_HELP,
    }
)
@run_task(stopped=BUILD_STOPPED)
def nightly(
    c: Context,
    family: str = "all",
    channel: str = "nightly",
    reports: str | None = None,
    config: str | None = None,
    no_remote_cache: bool = False,
) -> None:
    """Nightly: plan, build, verify, publish and move the channel for each family; a summary."""
    cfg, art = _paths(c, config)
    where = Path(reports) if reports else None
    remote = not no_remote_cache
    print(commands.nightly(cfg, art, family, channel, where, remote, _metrics_dir(c)))


@task(
    name="verify",
    help={
        "family": "only this family",
        "rehash": "re-hash every blob (a full download) instead of trusting the server's CRC32",
        "config": STORE_CONFIG_HELP,
    },
)
@run_task
def store_verify(
    c: Context, family: str | None = None, rehash: bool = False, config: str | None = None
) -> None:
    """Check every published version and channel against its signature (exit 1 if damaged)."""
    print(commands.store_verify(_paths(c, config)[0], family, rehash))


@task(
    name="remove",
    help={
        "family": "family of the version",
        "version": "the version to delete (no channel may point at it)",
        "apply": "really delete (default: dry run)",
        "config": STORE_CONFIG_HELP,
    },
)
@run_task
def store_remove(
    c: Context, family: str, version: str, apply: bool = False, config: str | None = None
) -> None:
    """Delete one published version, e.g. a damaged one (dry run unless --apply)."""
    print(commands.store_remove(_paths(c, config)[0], family, version, apply))


@task(help={"out": "output directory (default: hardening/generated, which the harden layer uses)"})
@run_task
def tailor(c: Context, out: str = "hardening/generated") -> None:
    """Derive the OL8 CIS L1 tailoring and bash/Ansible fixes from the pinned SSG datastreams."""
    print(commands.hardening_tailor(Path(out)))


@task(help={"out": "output directory for coverage.json and coverage.txt"})
@run_task
def coverage(c: Context, out: str = "artifacts/hardening") -> None:
    """Report CIS L1 Server coverage: SSG rule, our script, waiver, or not covered."""
    print(commands.hardening_coverage(Path(out)))


FLEET_HELP = "fleet file (default: fleet.yaml)"


def _fleet(c: Context, fleet: str | None) -> Path:
    return Path(fleet or c.config.factory.fleet)


@task(
    name="plan",
    help={
        "json": "print the plan as JSON",
        "fleet": FLEET_HELP,
        "fresh": "ignore the placement file: place every VM anew",
        "rebalance": "propose one-VM-at-a-time moves onto hosts the placement file keeps empty",
    },
)
@run_task
def fleet_plan(
    c: Context,
    json: bool = False,
    fresh: bool = False,
    rebalance: bool = False,
    fleet: str | None = None,
) -> None:
    """Show where every VM goes, per-group, per-hypervisor and fleet totals (read-only)."""
    print(fleet_commands.plan(_fleet(c, fleet), json, fresh, rebalance))


@task(
    name="render",
    help={
        "out": "directory for <hypervisor>/<node>.xml",
        "domain_type": "kvm (default) or qemu",
        "fleet": FLEET_HELP,
    },
)
@run_task
def fleet_render(c: Context, out: str, domain_type: str = "kvm", fleet: str | None = None) -> None:
    """Write one libvirt domain XML per VM, offline (no daemon, no store)."""
    print(fleet_commands.render(_fleet(c, fleet), Path(out), domain_type))


@task(
    name="apply",
    help={
        "host": "only this hypervisor",
        "only": "only this group",
        "dry_run": "show what would change, change nothing",
        "rebalance": "move VMs onto hosts the placement file keeps empty, one at a time, gated",
        "fleet": FLEET_HELP,
    },
)
@run_task(stopped=FLEET_STOPPED)
def fleet_apply(
    c: Context,
    host: str | None = None,
    only: str | None = None,
    dry_run: bool = False,
    rebalance: bool = False,
    fleet: str | None = None,
) -> None:
    """Create or update the fleet's VMs through libvirt (templates pulled and verified)."""
    if rebalance:
        if host is not None or only is not None:
            raise Exit("error: fleet.apply --rebalance moves VMs fleet-wide: no --host, --only", 2)
        print(fleet_commands.rebalance(_fleet(c, fleet), dry_run))
        return
    fleet_commands.apply(_fleet(c, fleet), host, only, dry_run)


@task(
    name="status",
    help={"host": "only this hypervisor", "only": "only this group", "fleet": FLEET_HELP},
)
@run_task
def fleet_status(
    c: Context, host: str | None = None, only: str | None = None, fleet: str | None = None
) -> None:
    """Per VM: running state, template version, drift from the plan."""
    print(fleet_commands.status(_fleet(c, fleet), host, only))


@task(name="metrics", help={"fleet": FLEET_HELP})
@run_task
def fleet_metrics(c: Context, fleet: str | None = None) -> None:
    """Write fleet.status as Prometheus metrics to factory.metrics_dir (for node_exporter)."""
    print(fleet_commands.metrics(_fleet(c, fleet), _metrics_dir(c)))


@task(name="inventory", help={"fleet": FLEET_HELP})
@run_task
def fleet_inventory(c: Context, fleet: str | None = None) -> None:
    """Print the fleet as an Ansible dynamic inventory (JSON, --list format); no libvirt."""
    print(fleet_commands.inventory(_fleet(c, fleet)))


@task(
    name="destroy",
    help={
        "only": "the group to remove",
        "node": "the VM to remove",
        "delete_data": "also delete their data disks (named first)",
        "fleet": FLEET_HELP,
    },
)
@run_task(stopped=FLEET_STOPPED)
def fleet_destroy(
    c: Context,
    only: str | None = None,
    node: str | None = None,
    delete_data: bool = False,
    fleet: str | None = None,
) -> None:
    """Stop and undefine VMs; their data disks are kept unless --delete-data."""
    print(fleet_commands.destroy(_fleet(c, fleet), only, node, delete_data))


@task(
    name="rollout",
    help={
        "channel": "channel to follow (default: the fleet file's)",
        "only": "only this group",
        "dry_run": "show the order, touch nothing",
        "rollback": "put every node that has not passed back on its previous overlay",
        "fleet": FLEET_HELP,
    },
)
@run_task(stopped=FLEET_STOPPED)
def fleet_rollout(
    c: Context,
    channel: str | None = None,
    only: str | None = None,
    dry_run: bool = False,
    rollback: bool = False,
    fleet: str | None = None,
) -> None:
    """Move running VMs onto the channel's template, one node per cluster at a time."""
    result = fleet_commands.rollout(
        _fleet(c, fleet), channel, only, dry_run, rollback, metrics_dir=_metrics_dir(c)
    )
    if isinstance(result, str):  # the dry run's order; a real run has printed its summary
        print(result)


@task(
    name="recover",
    help={
        "cluster": "the Galera cluster to bring back (a cluster name in the fleet file)",
        "gone": "members lost for good, comma-separated: their data is never considered",
        "dry_run": "only show each member's position and what would be done",
        "fleet": FLEET_HELP,
    },
)
@run_task(stopped=FLEET_STOPPED)
def fleet_recover(
    c: Context,
    cluster: str,
    gone: str = "",
    dry_run: bool = False,
    fleet: str | None = None,
) -> None:
    """Bring a Galera cluster back after an outage, from the member that committed most."""
    names = frozenset(n for n in gone.split(",") if n)
    print(fleet_commands.recover(_fleet(c, fleet), cluster, names, dry_run=dry_run))


@task(
    name="rotate",
    help={
        "group": "only this rotated group (default: every group with rotation:)",
        "at": "rotate as if it were this ISO time (default: now; no zone: the group's)",
        "dry_run": "only say what would be backed up and switched",
        "fleet": FLEET_HELP,
    },
)
@run_task(stopped=FLEET_STOPPED)
def fleet_rotate(
    c: Context,
    group: str | None = None,
    at: str | None = None,
    dry_run: bool = False,
    fleet: str | None = None,
) -> None:
    """Round-robin groups: back up each ended period, purge only after a verified backup."""
    print(rr_commands.rotate_task(_fleet(c, fleet), group, at, dry_run))


@task(
    name="restore",
    help={
        "node": "the member whose backup to restore",
        "period": "its period (2026-12-07, or 2026-12 for a monthly group)",
        "to": "restore onto this member instead (default: --node)",
        "overwrite": "the member's name, to replace the data it holds",
        "fleet": FLEET_HELP,
    },
)
@run_task(stopped=FLEET_STOPPED)
def fleet_restore(
    c: Context,
    node: str,
    period: str,
    to: str | None = None,
    overwrite: str | None = None,
    fleet: str | None = None,
) -> None:
    """Restore a verified round-robin backup onto a member; tables checked against it."""
    print(rr_commands.restore_task(_fleet(c, fleet), node, period, to, overwrite))


@task(
    name="backups",
    help={
        "group": "only this rotated group",
        "prune": "also list the backups retention (backup_keep) removes",
        "apply": "with --prune: really remove them (default: dry run)",
        "fleet": FLEET_HELP,
    },
)
@run_task(stopped=FLEET_STOPPED)
def fleet_backups(
    c: Context,
    group: str | None = None,
    prune: bool = False,
    apply: bool = False,
    fleet: str | None = None,
) -> None:
    """List round-robin backups per member and period with their verification (re-checked)."""
    print(rr_commands.backups_task(_fleet(c, fleet), group, prune, apply))


@task(
    name="gc",
    help={
        "host": "only this hypervisor",
        "apply": "really remove (default: dry run)",
        "fleet": FLEET_HELP,
    },
)
@run_task(stopped=FLEET_STOPPED)
def fleet_gc(
    c: Context, host: str | None = None, apply: bool = False, fleet: str | None = None
) -> None:
    """Remove templates no VM's overlay uses and no channel points at (dry run by default)."""
    print(fleet_commands.gc(_fleet(c, fleet), host, apply))


@task(name="verify", help={"config": CONFIG_HELP})
@run_task
def cache_verify(c: Context, config: str | None = None) -> None:
    """Check every cached layer: image sha256, parent bytes, backing chain (exit 1 if bad)."""
    _, art = _paths(c, config)
    print(commands.cache_verify(art))


@task(
    name="evict",
    help={
        "layer": "key (or a unique prefix of 12+ characters) of the layer to remove",
        "family": "remove the layers of this family's last build that no other family uses",
        "config": CONFIG_HELP,
    },
)
@run_task
def cache_evict(
    c: Context, layer: str | None = None, family: str | None = None, config: str | None = None
) -> None:
    """Remove a layer, or a family's own layers, and every layer built on them."""
    _, art = _paths(c, config)
    print(commands.cache_evict(art, layer=layer, family=family))


@task(
    name="update",
    help={
        "package": "upgrade only this package (default: every package, within pyproject ranges)",
        "test": "run the unit and integration tests after installing (default: yes)",
    },
)
@run_task
def deps_update(c: Context, package: str | None = None, test: bool = True) -> None:
    """Refresh requirements.lock (pip-compile, hashes), install it into .venv, run the tests."""
    from imagefactory.util import lockfile

    changed = lockfile.refresh(package)
    print("\n".join(changed) if changed else "requirements.lock: no version changed")
    c.run("./bootstrap.sh --python-only", pty=False)
    if test:
        c.run(".venv/bin/pytest -q tests/unit tests/integration", pty=False)


ns = Collection(
    plan,
    build,
    verify,
    doctor,
    publish,
    images,
    promote,
    revoke,
    prune,
    pull,
    nightly,
    catalogue,
    Collection("hardening", tailor, coverage),
    Collection("store", store_verify, store_remove),
    Collection("cache", cache_verify, cache_evict),
    Collection("deps", deps_update),
    Collection(
        "fleet",
        fleet_plan,
        fleet_render,
        fleet_apply,
        fleet_status,
        fleet_metrics,
        fleet_inventory,
        fleet_destroy,
        fleet_rollout,
        fleet_gc,
        fleet_recover,
        fleet_rotate,
        fleet_backups,
        fleet_restore,
    ),
)
