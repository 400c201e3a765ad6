"""One function per `invoke fleet.*` task; tasks.py only parses flags and calls these."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from imagefactory.errors import FactoryError
from imagefactory.fleet import galera
from imagefactory.fleet.apply import ApplyReport, ApplyRun, OnHost, apply_fleet, select
from imagefactory.fleet.config import galera_roles, load_fleet, read_access_keys
from imagefactory.fleet.domain import render_domain
from imagefactory.fleet.galera import GaleraMember
from imagefactory.fleet.galera_ssh import SshMember
from imagefactory.fleet.gc import collect_templates
from imagefactory.fleet.health import Gate, HealthCheck, check_identity, ssh_gate
from imagefactory.fleet.hypervisor import Connections, FleetError
from imagefactory.fleet.inventory import inventory as inventory_document
from imagefactory.fleet.metrics import rollout_metrics, status_metrics
from imagefactory.fleet.model import Fleet
from imagefactory.fleet.move import rebalance_fleet, unfinished_moves
from imagefactory.fleet.nodes import FleetPlan, Node, plan_fleet
from imagefactory.fleet.rebalance import empty_hosts, render_rebalance
from imagefactory.fleet.rollout import RolloutReport, RolloutRun, rollout_fleet
from imagefactory.fleet.rollout_lanes import describe_plan
from imagefactory.fleet.rollout_progress import Progress
from imagefactory.fleet.rollout_state import RolloutState
from imagefactory.fleet.rr_commands import rotation_status, rotation_summary
from imagefactory.fleet.sizing import plan_document, render_plan
from imagefactory.fleet.status import VmStatus, destroy_vms, fleet_status, render_status
from imagefactory.fleet.storage import layout_for
from imagefactory.fleet.templates import (
    channel_versions,
    deployable_versions,
    local_templates,
    pull_templates,
    revoked_versions,
)
from imagefactory.report.metrics import SETTING, check_directory
from imagefactory.util.fsutil import write_atomic


@contextmanager
def _clean_errors() -> Iterator[None]:
    """libvirt and OS errors as one FleetError line (tasks.py prints FactoryErrors cleanly)."""
    try:
        yield
    except OSError as exc:
        raise FleetError(f"{exc.filename or 'I/O'}: {exc.strerror or exc}") from None
    except FactoryError:
        raise
    except Exception as exc:
        if type(exc).__name__ == "libvirtError":
            raise FleetError(f"libvirt: {exc.get_error_message()}") from None  # type: ignore[attr-defined]
        raise


def plan(
    fleet_file: Path, as_json: bool = False, fresh: bool = False, rebalance: bool = False
) -> str:
    """Placement and totals (read-only: no daemon, no store); hosts the placement file keeps
    empty are named, and with rebalance the moves that would fill them are proposed."""
    p = plan_fleet(load_fleet(fleet_file), fresh=fresh)
    if as_json:
        return json.dumps(plan_document(p), indent=2)
    out = [render_plan(p), *rotation_summary(p.fleet)]
    empty = empty_hosts(p)
    if empty:
        out.append(
            f"empty: {', '.join(empty)} (the placement file keeps every VM where it is; "
            "`fleet.plan --rebalance` proposes moves)"
        )
    if rebalance:
        out.append(render_rebalance(p))
    return "\n".join(out)


@_clean_errors()
def render(fleet_file: Path, out: Path, domain_type: str = "kvm") -> str:
    """One domain XML per node into `out`, offline: templates as already pulled here (or
    `unpulled`), domain type as given (the hypervisor decides at apply)."""
    started = time.monotonic()
    fleet = load_fleet(fleet_file)
    p = plan_fleet(fleet)
    keys = read_access_keys(fleet)
    templates = local_templates(fleet, {g.family for g in fleet.groups.values()})
    out.mkdir(parents=True, exist_ok=True)
    for node in select(p, None, None):
        files = layout_for(fleet.hypervisors[node.host])
        spec = OnHost(fleet, files, domain_type, keys).spec(node, templates[node.group.family])
        write_atomic(out / node.host / f"{node.name}.xml", render_domain(spec))
    took = time.monotonic() - started
    return f"{len(p.nodes)} domain XML files in {out}/<hypervisor>/ ({took:.2f} s)"


MemberFactory = Callable[[Fleet, list[Node]], list[GaleraMember]]


@_clean_errors()
def apply(
    fleet_file: Path,
    host: str | None = None,
    only: str | None = None,
    dry_run: bool = False,
    conns: Connections | None = None,
    members: MemberFactory | None = None,
) -> ApplyReport:
    """Create or update the fleet's VMs (templates pulled and verified first); a Galera
    cluster created by this run is formed: one member bootstraps, the others join."""
    fleet = load_fleet(fleet_file)
    p = plan_fleet(fleet)
    nodes = select(p, host, only)
    families = {n.group.family for n in nodes}
    keys = read_access_keys(fleet)
    if dry_run:
        deployable_versions(fleet, families)  # as apply would: a bad or revoked target fails
        run = ApplyRun(fleet, local_templates(fleet, families), keys, True, print)
        return apply_fleet(run, p, nodes, conns)
    with RolloutState(fleet).locked():  # never beside a rollout: it could redefine its VMs
        _refuse_unfinished_moves(fleet)
        run = ApplyRun(fleet, pull_templates(fleet, families), keys, False, print)
        report = apply_fleet(run, p, nodes, conns)
        for cluster in _new_galera_clusters(p, nodes, report):
            _form(fleet, [n for n in nodes if n.group.cluster == cluster], members)
        return report


def rebalance(
    fleet_file: Path,
    dry_run: bool = False,
    conns: Connections | None = None,
    health: HealthCheck | Gate | None = None,
) -> str:
    """Make the moves `fleet.plan --rebalance` proposes, one VM at a time, each through the
    rollout's readiness checks and health gate (fleet/move.py)."""
    fleet = load_fleet(fleet_file)
    if dry_run:
        return render_rebalance(plan_fleet(fleet))
    if health is None:
        check_identity(fleet)
    families = {g.family for g in fleet.groups.values()}
    targets = pull_templates(fleet, families)
    progress = Progress()
    if health is None:
        gate = ssh_gate(fleet, fleet.rollout.health_timeout_s, progress.say)
    else:
        gate = health if isinstance(health, Gate) else Gate(health)
    try:
        report = rebalance_fleet(fleet, lambda p: RolloutRun(p, targets, gate, progress.say), conns)
    finally:
        progress.close()
    if report.stopped:
        raise FleetError(f"{report.summary()}\nrebalance stopped: {report.stopped}")
    return report.summary()


def _refuse_unfinished_moves(fleet: Fleet) -> None:
    left = unfinished_moves(fleet)
    if left:
        raise FleetError(
            f"a rebalance was cut short mid-move: {'; '.join(left)}: run "
            "`invoke fleet.apply --rebalance` to finish it first"
        )


def _new_galera_clusters(p: FleetPlan, nodes: list[Node], report: ApplyReport) -> list[str]:
    """Galera clusters every member of which this run created (an existing cluster is never
    bootstrapped by apply; a member added to it joins through fleet.recover)."""
    out = []
    for cluster, groups in sorted(p.fleet.clusters().items()):
        if not {g.role for g in groups} <= galera_roles():
            continue
        names = [n for g in groups for n in g.node_names]
        if all(report.actions.get(n, "").startswith("created") for n in names):
            out.append(cluster)
    return out


def _form(fleet: Fleet, nodes: list[Node], members: MemberFactory | None) -> None:
    cluster = nodes[0].group.cluster
    if members is None:
        key = fleet.rollout.ssh_identity
        if key is None:
            print(
                f"cluster {cluster}: not formed (rollout.ssh_identity is not set); once its VMs "
                f"are up: invoke fleet.recover --cluster={cluster}"
            )
            return
        reach: list[GaleraMember] = [SshMember(fleet, n, key) for n in nodes]
    else:
        reach = members(fleet, nodes)
    print(f"cluster {cluster}: forming (waiting for every member to report its position)")
    galera.form(reach, timeout_s=fleet.rollout.health_timeout_s, say=lambda s: print("  " + s))


def _status(
    fleet: Fleet, host: str | None, only: str | None, conns: Connections | None
) -> tuple[FleetPlan, list[VmStatus], str]:
    """fleet.status's rows (and a note when the channel or the revocations could not be read)."""
    channel: dict[str, str] = {}
    revoked: dict[tuple[str, str], str] = {}
    note = ""
    if fleet.store is not None:
        families = {g.family for g in fleet.groups.values()}
        try:
            channel = channel_versions(fleet, families)
        except FactoryError as exc:
            note = f"\n(channel {fleet.channel} not read: {exc})"
        try:
            revoked = revoked_versions(fleet, families)
        except FactoryError as exc:
            note += f"\n(revocations not read: {exc})"
    p = plan_fleet(fleet)
    rows = fleet_status(p, host=host, only=only, conns=conns, channel=channel, revoked=revoked)
    return p, rows, note


@_clean_errors()
def status(
    fleet_file: Path,
    host: str | None = None,
    only: str | None = None,
    conns: Connections | None = None,
) -> str:
    """Per VM: state, template version, the channel's version, drift from the plan."""
    fleet = load_fleet(fleet_file)
    _, rows, note = _status(fleet, host, only, conns)
    rotation = rotation_status(fleet) if host is None and only is None else []
    return "\n".join([render_status(rows) + note, *rotation])


@_clean_errors()
def metrics(fleet_file: Path, metrics_dir: Path | None, conns: Connections | None = None) -> str:
    """fleet.status of the whole fleet as Prometheus metrics in metrics_dir."""
    if metrics_dir is None:
        raise FleetError(f"fleet.metrics: no metrics directory: set {SETTING}")
    check_directory(metrics_dir)
    fleet = load_fleet(fleet_file)
    p, rows, note = _status(fleet, None, None, conns)
    path = status_metrics(metrics_dir, p, rows, time.time())
    return f"{len(rows)} VM(s) in {path}" + note


def inventory(fleet_file: Path) -> str:
    """The fleet as Ansible's dynamic inventory JSON (`--list`), from the files only."""
    return json.dumps(inventory_document(plan_fleet(load_fleet(fleet_file))), indent=2)


@_clean_errors()
def rollout(
    fleet_file: Path,
    channel: str | None = None,
    only: str | None = None,
    dry_run: bool = False,
    rollback: bool = False,
    conns: Connections | None = None,
    health: HealthCheck | Gate | None = None,
    metrics_dir: Path | None = None,
) -> RolloutReport | str:
    """Move VMs onto the channel's version, every cluster at once, with a health gate; with
    metrics_dir, each cluster's result goes there (not for a dry run or a rollback)."""
    if metrics_dir is not None:
        check_directory(metrics_dir)
    fleet = load_fleet(fleet_file)
    p = plan_fleet(fleet)
    nodes = select(p, None, only)
    families = {n.group.family for n in nodes}
    if dry_run:
        versions = deployable_versions(fleet, families, channel)
        current = {r.node: r.version for r in fleet_status(p, only=only, conns=conns)}
        return describe_plan(p, versions, current, only)
    if health is None:
        check_identity(fleet)  # before any VM goes down, not after its first boot
    _refuse_unfinished_moves(fleet)
    targets = (
        local_templates(fleet, families)
        if rollback
        else pull_templates(fleet, families, channel=channel)
    )
    progress = Progress()  # lines named by cluster; a live summary on a terminal
    if health is None:
        gate = ssh_gate(fleet, fleet.rollout.health_timeout_s, progress.say)
    else:
        gate = health if isinstance(health, Gate) else Gate(health)
    run = RolloutRun(p, targets, gate, progress.say, progress)
    report = rollout_fleet(run, nodes, rollback, conns)
    if metrics_dir is not None and not rollback:
        rollout_metrics(metrics_dir, fleet.name, nodes, report, time.time())
    if report.stopped:
        raise FleetError(
            "rollout stopped in cluster(s) "
            + ", ".join(f"{c} ({why})" for c, why in sorted(report.stopped.items()))
        )
    return report


@_clean_errors()
def gc(
    fleet_file: Path, host: str | None = None, apply: bool = False, conns: Connections | None = None
) -> str:
    """List (or with apply remove) templates no overlay uses and no channel points at."""
    fleet = load_fleet(fleet_file)
    pinned = channel_versions(fleet, {g.family for g in fleet.groups.values()})
    if apply:  # a rollout installs templates and overlays meanwhile: never beside one
        with RolloutState(fleet).locked():
            unused = collect_templates(fleet, pinned, host=host, apply=True, conns=conns)
    else:
        unused = collect_templates(fleet, pinned, host=host, apply=False, conns=conns)
    verb = "removed" if apply else "unused (dry run)"
    return f"{len(unused)} template(s) {verb}"


@_clean_errors()
def destroy(
    fleet_file: Path,
    only: str | None = None,
    node: str | None = None,
    delete_data: bool = False,
    conns: Connections | None = None,
) -> str:
    """Stop and undefine VMs; data disks stay unless delete_data."""
    fleet = load_fleet(fleet_file)
    with RolloutState(fleet).locked():
        done = destroy_vms(
            plan_fleet(fleet), only=only, node=node, delete_data=delete_data, conns=conns
        )
    return f"{len(done)} VM(s) removed" + ("" if delete_data else "; data disks kept")


def recover(
    fleet_file: Path,
    cluster: str,
    gone: frozenset[str] = frozenset(),
    dry_run: bool = False,
    members: MemberFactory | None = None,
) -> str:
    """Bring a Galera cluster back after an outage: every member reports its position, the
    one with the most committed data bootstraps, the others join one at a time."""
    fleet = load_fleet(fleet_file)
    p = plan_fleet(fleet)
    nodes = [n for n in select(p, None, None) if n.group.cluster == cluster]
    if not nodes:
        raise FleetError(
            f"{fleet.path}: no cluster {cluster!r} (known: {sorted(fleet.clusters())})"
        )
    roles = sorted({n.group.role for n in nodes})
    if not set(roles) <= galera_roles():
        raise FleetError(f"cluster {cluster} is not a Galera cluster (roles {', '.join(roles)})")
    if members is None:
        check_identity(fleet)
        key = fleet.rollout.ssh_identity
        assert key is not None  # check_identity refused a fleet without one
        reach: list[GaleraMember] = [SshMember(fleet, n, key) for n in nodes]
    else:
        reach = members(fleet, nodes)
    with RolloutState(fleet).locked():  # never beside a rollout or another recovery
        if dry_run:
            reports = {m.name: m.report() for m in reach}
            d = galera.decide(reports, gone)
            lines = [
                f"{name}: {r.label() if r else 'did not report'}"
                for name, r in sorted(reports.items())
            ]
            verb = f"would bootstrap {d.bootstrap} ({d.why})" if d.bootstrap else d.why
            return "\n".join(
                [*lines, verb, f"then join, one at a time: {', '.join(d.joins) or '-'}"]
            )
        d = galera.form(reach, gone, fleet.rollout.health_timeout_s, say=print)
        first = f"bootstrapped {d.bootstrap}; " if d.bootstrap else ""
        return f"cluster {cluster}: {first}{len(reach) - len(gone)} members ready"
