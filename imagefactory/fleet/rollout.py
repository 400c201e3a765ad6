"""fleet.rollout: move running VMs onto the version a channel points at, cluster by cluster,
keeping every data disk and every cluster's quorum, and able to go back.

Every cluster at once (fleet/rollout_lanes.py), each one node at a time (independent groups:
`rollout_batch` at a time), within `rollout.max_unavailable` VMs down in the fleet and each
hypervisor's `max_parallel`:
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

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from imagefactory.errors import FactoryError
from imagefactory.fleet import hostkeys
from imagefactory.fleet import hypervisor as hvm
from imagefactory.fleet.apply import OnHost, live_fleet_metadata
from imagefactory.fleet.config import read_access_keys
from imagefactory.fleet.disks import storage_for
from imagefactory.fleet.domain import observe, render_domain
from imagefactory.fleet.health import Gate, Health
from imagefactory.fleet.hostkeys import KnownHosts
from imagefactory.fleet.hypervisor import Connections, FleetError
from imagefactory.fleet.nodes import FleetPlan, Node
from imagefactory.fleet.rollout_lanes import Lane, Limits, Move, each, run_lanes
from imagefactory.fleet.rollout_progress import Progress, in_cluster
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
    progress: Progress | None = None  # counts per cluster, for a live summary


class Rollout:
    """One rollout run: connections, storage and domain type per host, the state files."""

    def __init__(self, run: RolloutRun, conns: Connections) -> None:
        self.plan, self.fleet, self.targets = run.plan, run.plan.fleet, run.targets
        self.gate, self.conns, self.say = run.gate, conns, run.say
        self.state = RolloutState(run.plan.fleet)
        self.keys = read_access_keys(run.plan.fleet)
        self.progress = run.progress
        self._host: dict[str, tuple[Any, VmStorage, str]] = {}
        self._hosts_lock = threading.Lock()
        # two clusters of one family may install its template on a host at once
        self._copying: dict[str, threading.Lock] = {
            h: threading.Lock() for h in self.fleet.hypervisors
        }

    def host(self, name: str) -> tuple[Any, VmStorage, str]:
        with self._hosts_lock:
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
        hostkeys.start(self.fleet, node, dom)
        return clean

    def install(self, host: str, tpl: TemplateRef) -> None:
        """The template on `host`, copied once (sha256 checked) whoever asks at once."""
        with self._copying[host]:
            if self.host(host)[1].install_template(tpl.image, tpl.sha256, tpl.family, tpl.version):
                self.say(f"  template {tpl.family} {tpl.version} installed on {host}")

    def fresh_overlay(self, node: Node, tpl: TemplateRef) -> None:
        """The template on the node's host and a new overlay of it. An overlay of this version
        left by an earlier attempt may have booted (machine id, host keys, logs): the node
        always starts from a fresh one."""
        self.install(node.host, tpl)
        storage = self.host(node.host)[1]
        storage.remove_overlay(node.name, tpl.version)
        storage.create_overlay(
            node.name,
            storage.template(tpl.family, tpl.version),
            tpl.version,
            node.group.size.os_disk_gb,
        )
        KnownHosts(self.fleet).new_overlay(node, storage.overlay(node.name, tpl.version))

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
        self.fresh_overlay(node, tpl)
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
        started = time.monotonic()
        result = self.gate.wait(node)
        if result.ok:
            result = self.others_see(node)
        if result.ok:
            self.state.set(node, "done", (old, new))
            self.host(node.host)[1].remove_overlay(node.name, old)
            self.say(f"{node.name}: gate ok ({time.monotonic() - started:.0f} s), now on {new}")
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
                with in_cluster(node.group.cluster):
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
                    hostkeys.start(self.fleet, node, dom)
                self.host(node.host)[1].remove_overlay(node.name, new)
                again = self.gate.wait(node)
                came = "healthy" if again.ok else f"NOT healthy: {again.detail}"
                report.outcomes[node.name] = f"rolled back to {old} ({came})"
            report.stopped.setdefault(node.group.cluster, f"{node.name} was being rolled back")
            return
        if not hvm.is_running(dom):
            hostkeys.start(self.fleet, node, dom)
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
        lanes = []
        for cluster, members in sorted(by_cluster.items()):
            if cluster not in report.stopped:
                with in_cluster(cluster):
                    todo = self.guarded(cluster, report, partial(self.todo, members, report))
                if todo:
                    lanes.append(Lane(cluster, members[0].group.batch, todo))
                    if self.progress is not None:
                        self.progress.expect(cluster, len(todo))
        per_host = {name: hv.max_parallel for name, hv in self.fleet.hypervisors.items()}
        limits = Limits(self.fleet.rollout.max_unavailable, per_host)
        run_lanes(lanes, limits, lambda cluster, batch: self.lane_step(cluster, batch, report))

    def guarded(self, cluster: str, report: RolloutReport, work: Callable[[], Any]) -> Any:
        """`work` for a cluster; a failure stops that cluster alone (None)."""
        try:
            return work()
        except FactoryError as exc:  # FleetError, a failed qemu-img (disk full), a store
            report.stopped[cluster] = str(exc)
        except hvm.libvirt_module().libvirtError as exc:  # e.g. a host gone mid-rollout
            report.stopped[cluster] = f"libvirt: {exc.get_error_message()}"
        self.say(f"cluster {cluster} stopped: {report.stopped[cluster]}")
        return None

    def todo(self, members: list[Node], report: RolloutReport) -> list[Move]:
        """The members not on their target yet, by name, with the version they run."""
        todo = []
        for node in sorted(members, key=lambda n: n.name):
            current = self.version(node)
            target = self.targets[node.group.family].version
            if current == target:
                report.outcomes.setdefault(node.name, f"already on {target}")
            else:
                todo.append((node, current))
        return todo

    def lane_step(self, cluster: str, batch: list[Move], report: RolloutReport) -> bool:
        """One batch of a cluster's lane (in a worker thread); False: the cluster stopped."""
        if self.progress is not None:
            self.progress.moved(cluster, started=len(batch))
        try:
            with in_cluster(cluster):
                return (
                    self.guarded(cluster, report, lambda: self.run_batch(batch, report)) is not None
                )
        finally:
            if self.progress is not None:
                self.progress.moved(cluster, finished=len(batch))

    def run_batch(self, batch: list[Move], report: RolloutReport) -> bool:
        """Prepare each node (no downtime), take them all down and up, then gate each; the
        stops and the gates of a batch run at once."""
        for node, old in batch:
            why = self.others_ready(node, [n for n, _ in batch])
            if why:
                raise FleetError(
                    f"{why}: no second member of cluster {node.group.cluster} is taken down"
                )
            self.prepare(node, old)
        replaced = each(lambda move: self.replace(*move), batch)
        up = [move for move, r in zip(batch, replaced, strict=True) if isinstance(r, bool)]
        finished = each(lambda move: self.finish(*move), up)
        for (node, _), outcome in zip(up, finished, strict=True):
            if isinstance(outcome, str):
                report.outcomes[node.name] = outcome
        errors = [r for r in (*replaced, *finished) if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        failed = [n.name for n, _ in up if report.outcomes[n.name].startswith("rolled back")]
        if failed:
            raise FleetError(
                f"{', '.join(failed)} failed the health gate and went back to the previous version"
            )
        forced = [n.name for (n, _), r in zip(batch, replaced, strict=True) if r is False]
        if forced:  # the node itself is up again; no further member is taken down
            raise FleetError(
                f"{', '.join(forced)} did not shut down within "
                f"{self.fleet.rollout.shutdown_timeout_s} s and was powered "
                "off (check its data before going on)"
            )
        return True

    def rollback(self, nodes: list[Node], report: RolloutReport) -> None:
        for node in nodes:
            entry = self.state.get(node)
            if entry is None or entry["phase"] not in (*UNFINISHED, "failed"):
                continue
            with in_cluster(node.group.cluster):
                self.rollback_node(node, entry, report)

    def rollback_node(self, node: Node, entry: dict[str, str], report: RolloutReport) -> None:
        old, new = entry["from"], entry["to"]
        if self.version(node) == old:
            dom = self.domain(node)
            if not hvm.is_running(dom):  # killed while it was shutting down
                hostkeys.start(self.fleet, node, dom)
            self.state.set(node, "rolled-back", (old, new))
            self.host(node.host)[1].remove_overlay(node.name, new)
            report.outcomes[node.name] = f"was still on {old}"
            return
        self.back(node, old, new)
        report.outcomes[node.name] = f"rolled back to {old}"


def rollout_fleet(
    run: RolloutRun, nodes: list[Node], rollback: bool = False, conns: Connections | None = None
) -> RolloutReport:
    """Move `nodes` onto the run's targets (or, rollback, back where they were)."""
    report = RolloutReport()
    with hvm.connections(conns) as pool, RolloutState(run.plan.fleet).locked():
        rollout = Rollout(run, pool)
        try:
            if rollback:
                rollout.rollback(nodes, report)
            else:
                rollout.run(nodes, report)
        finally:
            if run.progress is not None:
                run.progress.close()
    run.say(report.summary())
    return report
