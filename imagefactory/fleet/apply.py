"""fleet.apply: make each hypervisor hold exactly the VMs the plan puts there.

Per node: the template installed once per version, an overlay on it, the data disk created if
(and only if) it does not exist, the domain defined with validation and started. A VM that
exists is compared with what the plan wants (domain.observe on both sides): unchanged, or the
diff is shown and the definition replaced (effective at its next boot; running VMs are not
restarted). A running VM keeps the template version it was created from: moving VMs onto a
new template is a rollout, not an apply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from imagefactory.fleet import hostkeys
from imagefactory.fleet import hypervisor as hvm
from imagefactory.fleet.disks import storage_for
from imagefactory.fleet.domain import FLEET_NS, VmSpec, diff, observe, render_domain
from imagefactory.fleet.hostkeys import KnownHosts
from imagefactory.fleet.hypervisor import Connections, FleetError
from imagefactory.fleet.model import Fleet, Hypervisor
from imagefactory.fleet.nodes import FleetPlan, Node, write_state
from imagefactory.fleet.storage import FilesLayout, PoolLayout, VmStorage
from imagefactory.fleet.templates import TemplateRef


@dataclass
class ApplyReport:
    actions: dict[str, str] = field(default_factory=dict)  # node -> what happened

    def count(self, word: str) -> int:
        return sum(1 for a in self.actions.values() if a.startswith(word))

    def summary(self) -> str:
        kinds = ("created", "changed", "started", "unchanged", "would")
        counts = ", ".join(f"{self.count(k)} {k}" for k in kinds if self.count(k))
        return f"{len(self.actions)} VM(s): {counts or 'nothing to do'}"


def select(plan: FleetPlan, host: str | None, only: str | None) -> list[Node]:
    """The plan's nodes on `host` and in group `only` (both optional), checked by name."""
    fleet = plan.fleet
    if host is not None and host not in fleet.hypervisors:
        raise FleetError(
            f"{fleet.path}: unknown hypervisor {host!r} (known: "
            f"{', '.join(sorted(fleet.hypervisors))})"
        )
    if only is not None and only not in fleet.groups:
        raise FleetError(f"{fleet.path}: unknown group {only!r} (known: {', '.join(fleet.groups)})")
    return [
        n
        for n in sorted(plan.nodes.values(), key=lambda n: (n.host, n.name))
        if (host is None or n.host == host) and (only is None or n.group.name == only)
    ]


@dataclass(frozen=True)
class OnHost:
    """What the definition of a VM on one hypervisor is made from besides its node and its
    template: the fleet, where the VM's disks live there, its domain type, the ops keys."""

    fleet: Fleet
    files: FilesLayout | PoolLayout | VmStorage
    dtype: str
    keys: tuple[str, ...]

    def spec(self, node: Node, template: TemplateRef) -> VmSpec:
        data, files = node.group.data_disk, self.files
        return VmSpec(
            node=node,
            fleet=self.fleet,
            domain_type=self.dtype,
            firmware=template.firmware,
            template=files.template(node.group.family, template.version),
            template_version=template.version,
            overlay=files.overlay(node.name, template.version),
            data=files.data(node.name, data.serial) if data else None,
            access_keys=self.keys,
            console_log=files.console_log(node.name),
        )


@dataclass(frozen=True)
class ApplyRun:
    """One fleet.apply: what every node's step reads (as BuildContext is a build's)."""

    fleet: Fleet
    templates: Mapping[str, TemplateRef]  # family -> the template new VMs are created from
    keys: tuple[str, ...]  # the ops public keys every VM gets
    dry_run: bool
    say: Callable[[str], None]


@dataclass(frozen=True)
class ApplyHost:
    """One hypervisor of an apply, connected: its VMs' storage and domain type."""

    run: ApplyRun
    hv: Hypervisor
    conn: Any
    files: VmStorage
    dtype: str

    @property
    def vms(self) -> OnHost:
        return OnHost(self.run.fleet, self.files, self.dtype, self.run.keys)


def live_fleet_metadata(dom: Any) -> dict[str, Any]:
    fleet: dict[str, Any] = observe(hvm.defined_xml(dom))["fleet"]
    return fleet


def apply_fleet(
    run: ApplyRun, plan: FleetPlan, nodes: list[Node], conns: Connections | None = None
) -> ApplyReport:
    """Create or update `nodes` (a selection of `plan`, see select())."""
    fleet, say, dry_run = plan.fleet, run.say, run.dry_run
    moved = sorted(set(plan.placement.moved) & {n.name for n in nodes})
    if moved:
        raise FleetError(
            f"{fleet.path}: {', '.join(moved)} would move to another hypervisor (their "
            "recorded host is gone or can no longer hold them): apply does not move a VM "
            "away from its data disk. Bring the host back, or, to re-create a VM elsewhere "
            f"with a blank data disk, remove its entry from {fleet.placement_file}"
        )
    report = ApplyReport()
    if not dry_run:
        # The placement file is written once, here, before any hypervisor is touched: it
        # records the plan (host, address, MAC and UUID of every node), which this run does
        # not change as it goes. Written first, a VM this run creates is recorded before it
        # exists, so apply killed at any moment (SIGKILL included, where no handler runs)
        # never leaves a VM whose identity the next plan could give to another node. Once
        # per apply instead of once per VM: at 3,550 VMs the per-VM rewrite and fsync of the
        # whole file made apply grow as the square of the fleet. Unchanged, it is not written.
        write_state(plan)
    by_host: dict[str, list[Node]] = {}
    for n in nodes:
        by_host.setdefault(n.host, []).append(n)
    with hvm.connections(conns) as pool:
        for name in sorted(by_host):
            hv = fleet.hypervisors[name]
            conn = pool.get(hv)
            hvm.check_capacity(conn, hv)
            files = storage_for(hv, conn)
            dtype, why = hvm.choose_domain_type(conn, hv)
            say(f"{name} ({hv.uri}): domain type {dtype} ({why})")
            on = ApplyHost(run, hv, conn, files, dtype)
            for node in by_host[name]:
                report.actions[node.name] = _apply_node(on, node)
    say(report.summary())
    return report


def _apply_node(host: ApplyHost, node: Node) -> str:
    run, hv, conn, files = host.run, host.hv, host.conn, host.files
    fleet, dry_run, say = run.fleet, run.dry_run, run.say
    dom = hvm.lookup(conn, node.name)
    wanted_tpl = run.templates[node.group.family]
    if dom is None:
        spec = host.vms.spec(node, wanted_tpl)
        if dry_run:
            return _said(
                say,
                node,
                f"would create ({wanted_tpl.family} {wanted_tpl.version}, {node.ip}, {node.mac})",
            )
        return _create(host, spec, wanted_tpl)
    meta = live_fleet_metadata(dom)
    if meta.get("fleet") != fleet.name:
        raise FleetError(
            f"hypervisor {hv.name}: a domain named {node.name} exists and is not "
            f"managed by fleet {fleet.name}: not touched (rename the group or "
            "remove that domain)"
        )
    version = meta.get("version") or wanted_tpl.version
    current_tpl = TemplateRef(
        wanted_tpl.family,
        version,
        wanted_tpl.image,
        wanted_tpl.sha256,
        observe(hvm.defined_xml(dom))["firmware"],
    )
    if version != wanted_tpl.version:
        say(
            f"  {node.name}: runs {version}; channel {fleet.channel} has "
            f"{wanted_tpl.version} (a rollout moves it)"
        )
    spec = host.vms.spec(node, current_tpl)
    xml = render_domain(spec)
    current, wanted = observe(hvm.defined_xml(dom)), observe(xml)
    changes = diff(current, wanted)
    old_data = [d["source"] for d in current["disks"] if d["target"] == "vdb"]
    new_data = [d["source"] for d in wanted["disks"] if d["target"] == "vdb"]
    if old_data and old_data != new_data:
        raise FleetError(
            f"{node.name} on {hv.name}: its data disk would change from "
            f"{old_data[0]} to {new_data[0] if new_data else 'none'}: refused "
            "(a VM never changes data disk; destroy it explicitly first)"
        )
    running = hvm.is_running(dom)
    if not changes:
        if running:
            return _said(say, node, "unchanged")
        if dry_run:
            return _said(say, node, "would start (defined, not running)")
        hostkeys.start(fleet, node, dom)
        return _said(say, node, "started (was defined, not running)")
    for line in changes:
        say(f"  {node.name}:   {line}")
    if dry_run:
        return _said(say, node, f"would change ({len(changes)} field(s))")
    _prepare_disks(files, spec, say)
    hvm.define(conn, hv, xml)
    files.record_definition(node.name, xml)
    if running:
        return _said(say, node, "changed (definition replaced; effective at its next boot)")
    hostkeys.start(fleet, node, hvm.lookup(conn, node.name))
    return _said(say, node, "changed and started")


def _said(say: Callable[[str], None], node: Node, text: str) -> str:
    say(f"  {node.name}: {text}")
    return text


def _prepare_disks(files: VmStorage, spec: VmSpec, say: Callable[[str], None]) -> None:
    node, group = spec.node, spec.node.group
    if files.create_overlay(node.name, spec.template, spec.template_version, group.size.os_disk_gb):
        KnownHosts(spec.fleet).new_overlay(node, spec.overlay)  # its first boot makes new keys
        say(f"  {node.name}: OS overlay {spec.overlay.name} on {spec.template.name}")
    if group.data_disk is not None:
        serial, size = group.data_disk.serial, group.data_disk.size_gb
        if files.create_data(node.name, serial, size):
            say(f"  {node.name}: data disk {serial} created ({size} GB, blank)")
        else:
            say(f"  {node.name}: data disk {serial} exists: kept as it is")


def _create(host: ApplyHost, spec: VmSpec, tpl: TemplateRef) -> str:
    hv, conn, files, say = host.hv, host.conn, host.files, host.run.say
    if not tpl.sha256:
        raise FleetError(f"no verified template of {tpl.family} on this machine")
    if not files.has_template(tpl.family, tpl.version):
        say(
            f"  installing template {tpl.family} {tpl.version} "
            f"({tpl.image.stat().st_size / 2**20:,.0f} MiB, sha256 checked on the way)"
        )
    if files.install_template(tpl.image, tpl.sha256, tpl.family, tpl.version):
        say(f"  template {tpl.family} {tpl.version} installed as {spec.template}")
    _prepare_disks(files, spec, say)
    xml = render_domain(spec)
    dom = hvm.define(conn, hv, xml)
    files.record_definition(spec.node.name, xml)
    hostkeys.start(spec.fleet, spec.node, dom)
    return _said(say, spec.node, f"created and started ({tpl.version}, {spec.node.ip})")


def fleet_domains(conn: Any, fleet: Fleet) -> dict[str, Any]:
    """Domains on one hypervisor that carry this fleet's metadata, by name."""
    out = {}
    for dom in conn.listAllDomains(0):
        if FLEET_NS not in hvm.defined_xml(dom):
            continue
        if live_fleet_metadata(dom).get("fleet") == fleet.name:
            out[dom.name()] = dom
    return out
