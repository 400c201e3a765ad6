"""fleet.rollout: move running VMs onto the version a channel points at, cluster by cluster,
keeping every data disk and every cluster's quorum, and able to go back.

Per cluster, one node at a time (independent groups: `rollout_batch` at a time):
1. before any downtime: the template is on the host (sha256 checked), the new overlay is made,
   the data disk is there, and every other member of the cluster is running;
2. ACPI shutdown (a hard stop after `shutdown_timeout_s` is reported), the definition switched
   to the new overlay (same data disk), start;
3. health gate: `appcore status` says configured as the node's role and its services are
   active (fleet/health.py);
4. passed: the old overlay is removed and the next node goes. Failed: the node is put back on
   its old overlay (kept until then) and started, and that cluster's rollout stops; the others
   go on. The command ends non-zero naming each stopped cluster.

Every step is recorded before it is taken in `<state_dir>/<hypervisor>.json` (atomic writes),
so a rollout killed at any moment continues where it was; `--rollback` puts every node that
has not passed back on its previous overlay.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from imagefactory.errors import FactoryError
from imagefactory.fleet import hypervisor as hvm
from imagefactory.fleet.apply import OnHost, live_fleet_metadata, select
from imagefactory.fleet.config import read_access_keys
from imagefactory.fleet.disks import storage_for
from imagefactory.fleet.domain import observe, render_domain
from imagefactory.fleet.health import Gate, Health
from imagefactory.fleet.hypervisor import Connections, FleetError
from imagefactory.fleet.nodes import FleetPlan, Node
from imagefactory.fleet.rollout_state import UNFINISHED, RolloutState
from imagefactory.fleet.storage import VmStorage
from imagefactory.fleet.templates import TemplateRef


@dataclass
class RolloutReport:
    outcomes: dict[str, str] = field(default_factory=dict)
    stopped: dict[str, str] = field(default_factory=dict)  # cluster -> why

    def summary(self) -> str:
        lines = [f"rollout: {len(self.outcomes)} VM(s) considered"]
        lines += [f"  {n}: {o}" for n, o in sorted(self.outcomes.items())]
        lines += [f"  cluster {c} STOPPED: {why}" for c, why in sorted(self.stopped.items())]
        return "\n".join(lines)


@dataclass(frozen=True)
class RolloutRun:
    """What a rollout is asked to do (as BuildContext is a build's run state)."""

    plan: FleetPlan
    targets: Mapping[str, TemplateRef]  # family -> the version its nodes move to
    gate: Gate
    say: Callable[[str], None]


class Rollout:
    """One rollout run: connections, storage and domain type per host, the state files."""

    def __init__(self, run: RolloutRun, conns: Connections) -> None:
        self.plan, self.fleet, self.targets = run.plan, run.plan.fleet, run.targets
        self.gate, self.conns, self.say = run.gate, conns, run.say
        self.state = RolloutState(run.plan.fleet)
        self.keys = read_access_keys(run.plan.fleet)
        self._host: dict[str, tuple[Any, VmStorage, str]] = {}

    def host(self, name: str) -> tuple[Any, VmStorage, str]:
        if name not in self._host:
            hv = self.fleet.hypervisors[name]
            conn = self.conns.get(hv)
            self._host[name] = (conn, storage_for(hv, conn), hvm.domain_type(conn, hv))
        return self._host[name]

    def domain(self, node: Node) -> Any:
        conn = self.host(node.host)[0]
        dom = hvm.lookup(conn, node.name)
        if dom is None:
            raise FleetError(f"{node.name}: not defined on {node.host}: run fleet.apply first")
        return dom

    def version(self, node: Node) -> str:
        return str(live_fleet_metadata(self.domain(node)).get("version") or "")

    def define(self, node: Node, tpl: TemplateRef) -> Any:
        conn, storage, dtype = self.host(node.host)
        xml = render_domain(OnHost(self.fleet, storage, dtype, self.keys).spec(node, tpl))
        dom = hvm.define(conn, self.fleet.hypervisors[node.host], xml)
        storage.record_definition(node.name, xml)
        return dom

    def ref(self, node: Node, version: str) -> TemplateRef:
        """The template a node ran or will run: the target, or its previous one (firmware
        as recorded before the switch, else read from its definition)."""
        target = self.targets[node.group.family]
        if version == target.version:
            return target
        entry = self.state.get(node) or {}
        firmware = (
            entry.get("firmware_from") or observe(hvm.defined_xml(self.domain(node)))["firmware"]
        )
        return TemplateRef(node.group.family, version, target.image, "", firmware)

    def restart_on(self, node: Node, tpl: TemplateRef) -> bool:
        """Stop, switch the definition to `tpl`, start; False if the stop was forced."""
        dom = self.domain(node)
        clean = hvm.stop(dom, self.fleet.rollout.shutdown_timeout_s, self.say)
        dom = self.define(node, tpl)
        hvm.start(self.fleet.hypervisors[node.host], dom)
        return clean

    # -- the steps -------------------------------------------------------------------------

    def prepare(self, node: Node, old: str) -> None:
        """Everything that can fail without downtime, before the node is touched."""
        _conn, storage, _ = self.host(node.host)
        data = node.group.data_disk
        if data is not None and not any(
            d.path == storage.data(node.name, data.serial) for d in storage.data_disks(node.name)
        ):
            raise FleetError(
                f"{node.name}: data disk {data.serial} is missing on {node.host}: "
                "not touched (a rollout never replaces a data disk)"
            )
        tpl = self.targets[node.group.family]
        if storage.install_template(tpl.image, tpl.sha256, tpl.family, tpl.version):
            self.say(f"  template {tpl.family} {tpl.version} installed on {node.host}")
        # An overlay of this version left by an earlier attempt may have booted (machine id,
        # host keys, logs): the node always starts the new version from a fresh one.
        storage.remove_overlay(node.name, tpl.version)
        storage.create_overlay(
            node.name,
            storage.template(tpl.family, tpl.version),
            tpl.version,
            node.group.size.os_disk_gb,
        )
        firmware = observe(hvm.defined_xml(self.domain(node)))["firmware"]
        self.state.set(node, "prepared", (old, tpl.version), firmware_from=firmware)

    def others(self, node: Node, batch: list[Node]) -> list[Node]:
        names = {n.name for n in batch}
        members = (n for g in self.fleet.clusters()[node.group.cluster] for n in g.node_names)
        return [self.plan.nodes[name] for name in members if name not in names]

    def others_ready(self, node: Node, batch: list[Node]) -> str:
        """Empty when every other member of the node's cluster is running and, by its role's
        own check, ready (a state transfer in progress is not); else who is not and why."""
        for other in self.others(node, batch):
            dom = hvm.lookup(self.host(other.host)[0], other.name)
            if dom is None or not hvm.is_running(dom):
                return f"{other.name} is not running"
            seen = self.wait_ready(other)
            if not seen.ok:
                return f"{other.name} is not ready ({seen.detail})"
        return ""

    def wait_ready(self, other: Node) -> Health:
        """The member's own readiness, asked again every 5 s for up to the health timeout: a
        state transfer finishing or one SSH connection timing out on a busy host is waited
        out, not taken for a member that is down."""
        if self.gate.look is None:
            return Health(True, "")
        deadline = time.monotonic() + self.fleet.rollout.health_timeout_s
        while not (seen := self.gate.look(other)).ok and time.monotonic() < deadline:
            time.sleep(5)
        return seen

    def others_see(self, node: Node) -> Health:
        """After `node` passed its gate: every other member is ready too (they count it in),
        polled within the health timeout."""
        for other in self.others(node, []):
            seen = self.wait_ready(other)
            if not seen.ok:
                return Health(False, f"{other.name} is not ready with it: {seen.detail}")
        return Health(True, "")

    def replace(self, node: Node, old: str) -> bool:
        """Switch the node to the target; False if it had to be powered off."""
        new = self.targets[node.group.family]
        if self.gate.prestop is not None:  # before any record: a refusal leaves nothing to resume
            self.gate.prestop(node)
        self.state.set(node, "replacing", (old, new.version))
        self.say(f"  {node.name}: {old} -> {new.version} on {node.host}: shutting down")
        clean = self.restart_on(node, new)
        self.state.set(node, "health", (old, new.version))
        return clean

    def finish(self, node: Node, old: str) -> str:
        """Health gate; passed: old overlay removed; failed: back on the old overlay."""
        new = self.targets[node.group.family].version
        result = self.gate.wait(node)
        if result.ok:
            result = self.others_see(node)
        if result.ok:
            self.state.set(node, "done", (old, new))
            self.host(node.host)[1].remove_overlay(node.name, old)
            return f"now on {new}"
        self.say(f"  {node.name}: FAILED its health gate: {result.detail}; rolling back")
        self.back(node, old, new)
        return f"rolled back to {old} ({result.detail})"

    def back(self, node: Node, old: str, new: str) -> None:
        self.state.set(node, "rolling-back", (old, new))
        self.restart_on(node, self.ref(node, old))
        self.state.set(node, "rolled-back", (old, new))
        self.host(node.host)[1].remove_overlay(node.name, new)
        again = self.gate.wait(node)
        self.say(
            f"  {node.name}: back on {old} "
            f"({'healthy' if again.ok else 'NOT healthy: ' + again.detail})"
        )

    # -- the run ---------------------------------------------------------------------------

    def resume(self, nodes: list[Node], report: RolloutReport) -> None:
        """Nodes a killed run left mid-way: finish or undo what it started."""
        for node in nodes:
            entry = self.state.get(node)
            if entry is None or entry["phase"] not in UNFINISHED:
                continue
            try:
                self.resume_node(node, entry, report)
            except FactoryError as exc:
                report.stopped[node.group.cluster] = f"resuming {node.name}: {exc}"

    def resume_node(self, node: Node, entry: dict[str, str], report: RolloutReport) -> None:
        old, new, phase = entry["from"], entry["to"], entry["phase"]
        self.say(f"  {node.name}: resuming ({phase} {old} -> {new})")
        now = self.version(node)
        dom = self.domain(node)
        if now not in (old, new):  # changed by someone else since (apply, destroy + apply)
            self.state.set(node, "abandoned", (old, new))
            report.outcomes[node.name] = f"left alone: it runs {now}, not {old} or {new}"
            return
        if phase == "rolling-back" or (
            now == new and new != self.targets[node.group.family].version
        ):
            if now == new:
                self.back(node, old, new)  # a rollback under way, or the channel moved
                report.outcomes[node.name] = f"rolled back to {old}"
            else:  # switched back already: the new overlay (it booted) goes, the node is gated
                self.state.set(node, "rolled-back", (old, new))
                if not hvm.is_running(dom):
                    hvm.start(self.fleet.hypervisors[node.host], dom)
                self.host(node.host)[1].remove_overlay(node.name, new)
                again = self.gate.wait(node)
                came = "healthy" if again.ok else f"NOT healthy: {again.detail}"
                report.outcomes[node.name] = f"rolled back to {old} ({came})"
            report.stopped.setdefault(node.group.cluster, f"{node.name} was being rolled back")
            return
        if not hvm.is_running(dom):
            hvm.start(self.fleet.hypervisors[node.host], dom)
        if now == old:  # not switched yet: it goes through the steps again
            self.state.set(node, "prepared", (old, new))
            return
        report.outcomes[node.name] = self.finish(node, old)
        if report.outcomes[node.name].startswith("rolled back"):
            report.stopped[node.group.cluster] = f"{node.name} failed its health gate"

    def run(self, nodes: list[Node], report: RolloutReport) -> None:
        self.resume(nodes, report)
        by_cluster: dict[str, list[Node]] = {}
        for node in nodes:
            by_cluster.setdefault(node.group.cluster, []).append(node)
        for cluster, members in sorted(by_cluster.items()):
            if cluster in report.stopped:
                continue
            self.say(f"cluster {cluster}:")
            try:
                self.run_cluster(members, report)
            except FactoryError as exc:  # FleetError, a failed qemu-img (disk full), a store
                report.stopped[cluster] = str(exc)
                self.say(f"  cluster {cluster} stopped: {exc}")
            except hvm.libvirt_module().libvirtError as exc:  # e.g. a host gone mid-rollout
                report.stopped[cluster] = f"libvirt: {exc.get_error_message()}"
                self.say(f"  cluster {cluster} stopped: {report.stopped[cluster]}")

    def run_cluster(self, members: list[Node], report: RolloutReport) -> None:
        todo = []
        for node in sorted(members, key=lambda n: n.name):
            current = self.version(node)
            target = self.targets[node.group.family].version
            if current == target:
                report.outcomes.setdefault(node.name, f"already on {target}")
            else:
                todo.append((node, current))
        size = members[0].group.batch
        for i in range(0, len(todo), size):
            batch = todo[i : i + size]
            for node, old in batch:
                why = self.others_ready(node, [n for n, _ in batch])
                if why:
                    raise FleetError(
                        f"{why}: no second member of cluster {node.group.cluster} is taken down"
                    )
                self.prepare(node, old)
            forced = [node.name for node, old in batch if not self.replace(node, old)]
            failed = []
            for node, old in batch:
                report.outcomes[node.name] = self.finish(node, old)
                if report.outcomes[node.name].startswith("rolled back"):
                    failed.append(node.name)
            if failed:
                raise FleetError(
                    f"{', '.join(failed)} failed the health gate and "
                    "went back to the previous version"
                )
            if forced:  # the node itself is up again; no further member is taken down
                raise FleetError(
                    f"{', '.join(forced)} did not shut down within "
                    f"{self.fleet.rollout.shutdown_timeout_s} s and was powered "
                    "off (check its data before going on)"
                )

    def rollback(self, nodes: list[Node], report: RolloutReport) -> None:
        for node in nodes:
            entry = self.state.get(node)
            if entry is None or entry["phase"] not in (*UNFINISHED, "failed"):
                continue
            old, new = entry["from"], entry["to"]
            if self.version(node) == old:
                dom = self.domain(node)
                if not hvm.is_running(dom):  # killed while it was shutting down
                    hvm.start(self.fleet.hypervisors[node.host], dom)
                self.state.set(node, "rolled-back", (old, new))
                self.host(node.host)[1].remove_overlay(node.name, new)
                report.outcomes[node.name] = f"was still on {old}"
                continue
            self.back(node, old, new)
            report.outcomes[node.name] = f"rolled back to {old}"


def rollout_fleet(
    run: RolloutRun, nodes: list[Node], rollback: bool = False, conns: Connections | None = None
) -> RolloutReport:
    """Move `nodes` onto the run's targets (or, rollback, back where they were)."""
    report = RolloutReport()
    with hvm.connections(conns) as pool, RolloutState(run.plan.fleet).locked():
        rollout = Rollout(run, pool)
        if rollback:
            rollout.rollback(nodes, report)
        else:
            rollout.run(nodes, report)
    run.say(report.summary())
    return report


def describe_plan(
    plan: FleetPlan, versions: dict[str, str], current: dict[str, str], only: str | None = None
) -> str:
    """--dry-run: the order in which nodes would be replaced."""
    lines = []
    nodes = select(plan, None, only)
    for cluster in sorted({n.group.cluster for n in nodes}):
        members = sorted((n for n in nodes if n.group.cluster == cluster), key=lambda n: n.name)
        moves = [
            f"{n.name}@{n.host} {current.get(n.name, '?')} -> {versions[n.group.family]}"
            for n in members
            if current.get(n.name) != versions[n.group.family]
        ]
        batch = members[0].group.batch
        lines.append(
            f"cluster {cluster} ({batch} at a time): "
            + ("; ".join(moves) if moves else "nothing to do")
        )
    return "\n".join(lines)
