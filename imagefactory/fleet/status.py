"""fleet.status and fleet.destroy: what each hypervisor runs against the plan; removing VMs
while keeping their data unless the operator asks, by name, for it to go."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from imagefactory.fleet import hypervisor as hvm
from imagefactory.fleet.apply import OnHost, fleet_domains, live_fleet_metadata, select
from imagefactory.fleet.config import read_access_keys
from imagefactory.fleet.disks import storage_for
from imagefactory.fleet.domain import diff, observe, render_domain
from imagefactory.fleet.hostkeys import KnownHosts
from imagefactory.fleet.hypervisor import Connections, FleetError
from imagefactory.fleet.nodes import FleetPlan
from imagefactory.fleet.rollout_state import RolloutState
from imagefactory.fleet.storage import layout_for
from imagefactory.fleet.templates import TemplateRef


@dataclass(frozen=True)
class VmStatus:
    node: str
    host: str
    state: str  # running, shut off, missing, not in plan, unreachable
    version: str
    drift: tuple[str, ...] = ()
    channel: str = "?"  # the version the fleet's channel points at for its family
    revoked: str = ""  # why its template version is revoked (or its record untrusted)

    def line(self) -> str:
        drift = "; ".join(self.drift) if self.drift else "none"
        mark = "REVOKED" if self.revoked else "-"
        return (
            f"{self.host:<10} {self.node:<24} {self.state:<12} {self.version:<30} "
            f"{mark:<8} {self.channel:<30} {drift}"
        )


def fleet_status(
    plan: FleetPlan,
    *,
    host: str | None = None,
    only: str | None = None,
    conns: Connections | None = None,
    channel: dict[str, str] | None = None,
    revoked: Mapping[tuple[str, str], str] | None = None,
) -> list[VmStatus]:
    """Per VM: state, template version, the channel's version, and drift from the plan;
    `revoked` maps (family, version) to why that version is revoked."""
    channel = channel or {}
    revoked = revoked or {}
    fleet = plan.fleet
    nodes = select(plan, host, only)
    keys = read_access_keys(fleet)
    out = []
    hosts = sorted({n.host for n in nodes} | ({host} if host else set(fleet.hypervisors)))
    with hvm.connections(conns) as pool:
        for name in hosts:
            hv = fleet.hypervisors[name]
            try:
                conn = pool.get(hv)
            except FleetError as exc:  # one host down must not hide the others
                out += [
                    VmStatus(n.name, name, "unreachable", "?", (str(exc),))
                    for n in nodes
                    if n.host == name
                ]
                continue
            files, dtype = layout_for(hv), hvm.domain_type(conn, hv)
            live = fleet_domains(conn, fleet)
            for node in (n for n in nodes if n.host == name):
                dom = live.pop(node.name, None)
                if dom is None:
                    out.append(VmStatus(node.name, name, "missing", "-"))
                    continue
                version = live_fleet_metadata(dom).get("version") or "?"
                current = observe(hvm.defined_xml(dom))
                tpl = TemplateRef(
                    node.group.family,
                    version,
                    files.template(node.group.family, version),
                    "",
                    current["firmware"],
                )
                wanted = observe(render_domain(OnHost(fleet, files, dtype, keys).spec(node, tpl)))
                state = "running" if hvm.is_running(dom) else "shut off"
                drift = diff(current, wanted)
                if hvm.is_running(dom) and diff(observe(dom.XMLDesc(0)), current):
                    drift.append("definition changed, effective at its next boot")
                out.append(
                    VmStatus(
                        node.name,
                        name,
                        state,
                        version,
                        tuple(drift),
                        channel.get(node.group.family, "?"),
                        revoked.get((node.group.family, version), ""),
                    )
                )
            if only is None:
                for orphan, dom in sorted(live.items()):
                    out.append(
                        VmStatus(
                            orphan,
                            name,
                            "not in plan",
                            live_fleet_metadata(dom).get("version") or "?",
                        )
                    )
    return out


def render_status(rows: list[VmStatus]) -> str:
    head = (
        f"{'host':<10} {'VM':<24} {'state':<12} {'template':<30} {'revoked':<8} "
        f"{'channel has':<30} drift from plan"
    )
    lines = [head, *(r.line() for r in rows)]
    if bad := [r for r in rows if r.revoked]:
        lines += [
            "",
            "VMs on a revoked template (promote another version, then fleet.rollout):",
            *(f"  {r.node} ({r.host}) on {r.version}: {r.revoked}" for r in bad),
        ]
    return "\n".join(lines)


def destroy_vms(
    plan: FleetPlan,
    *,
    only: str | None = None,
    node: str | None = None,
    delete_data: bool = False,
    shutdown_timeout_s: float = 120.0,
    conns: Connections | None = None,
    say: Callable[[str], None] = print,
) -> list[str]:
    """Stop and undefine the named group's or node's VMs and remove their OS overlays. Data
    disks stay unless delete_data, and then each is named (with its size) before it goes."""
    if (only is None) == (node is None):
        raise FleetError("fleet.destroy needs exactly one of --only=GROUP or --node=NAME")
    if delete_data and node is None:
        raise FleetError("--delete-data deletes data disks only of a VM named with --node=NAME")
    targets = select(plan, None, only)
    if node is not None:
        targets = [n for n in targets if n.name == node]
        if not targets:
            raise FleetError(f"{plan.fleet.path}: no node {node!r} in fleet {plan.fleet.name}")
    done = []
    with hvm.connections(conns) as pool:
        # Every check first (hosts reachable, every domain ours): a refusal touches no VM.
        steps = []
        for target in targets:
            hv = plan.fleet.hypervisors[target.host]
            conn = pool.get(hv)
            dom = hvm.lookup(conn, target.name)
            if dom is not None and live_fleet_metadata(dom).get("fleet") != plan.fleet.name:
                raise FleetError(
                    f"{hv.name}: domain {target.name} is not managed by "
                    f"fleet {plan.fleet.name}: nothing was touched"
                )
            steps.append((target, hv, storage_for(hv, conn), dom))
        for target, hv, files, dom in steps:
            if dom is not None:
                hvm.stop(dom, shutdown_timeout_s, say)
                hvm.undefine(dom)
                say(f"  {target.name}: stopped and undefined on {hv.name}")
            else:
                say(f"  {target.name}: not defined on {hv.name}")
            files.remove_os(target.name)
            RolloutState(plan.fleet).forget(target)
            KnownHosts(plan.fleet).forget(target)
            for disk in files.data_disks(target.name):
                if delete_data:
                    say(
                        f"  {target.name}: DELETING data disk {disk.path} ({disk.size:,} "
                        f"bytes, {disk.written:,} bytes written)"
                    )
                    files.delete_data(disk)
                else:
                    say(f"  {target.name}: data disk kept: {disk.path}")
            done.append(target.name)
    return done
