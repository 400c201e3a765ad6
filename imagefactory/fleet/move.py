"""fleet.apply --rebalance: the moves `fleet.plan --rebalance` proposes (fleet/rebalance.py),
made one VM at a time through the rollout's readiness checks and health gate.

A move of node N from host A to host B:
1. before any downtime: N runs the channel's version (a move is not a rollout), B holds no VM
   and no data disk of N, every other member of N's cluster is ready; the template and a
   fresh OS overlay are put on B;
2. N's pre-stop step and ACPI shutdown on A; its data disk streamed from A to B over the
   libvirt connections (or copied, for local files) and read back on B: the sha256 must be
   the one of the bytes A gave;
3. N defined on B (same MAC, UUID and address), undefined on A, started on B;
4. its health gate, and the other members of its cluster ready with it. Passed: the placement
   file says B, N's OS overlay on A goes; its data disk on A stays (nothing is deleted that was
   not asked for by name) and is named in the output. Failed: N is stopped and undefined on B,
   defined and started on A from its own disks, and the rebalance stops; the copy on B, which
   N ran on, stays and is named.

Each step is recorded before it is taken in A's rollout state file (phases move-*), so a run
killed at any point is finished, or undone, by the next `fleet.apply --rebalance`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NoReturn

from imagefactory.errors import FactoryError
from imagefactory.fleet import hostkeys
from imagefactory.fleet import hypervisor as hvm
from imagefactory.fleet.hostkeys import KnownHosts
from imagefactory.fleet.hypervisor import Connections, FleetError
from imagefactory.fleet.model import Fleet
from imagefactory.fleet.nodes import FleetPlan, Node, plan_fleet, record_host
from imagefactory.fleet.rebalance import Move, propose_moves
from imagefactory.fleet.rollout import Rollout, RolloutRun
from imagefactory.fleet.rollout_state import RolloutState
from imagefactory.fleet.storage import DataDisk

COPYING, COPIED, STARTED, BACK = "move-copying", "move-copied", "move-started", "move-back"
PHASES = (COPYING, COPIED, STARTED, BACK)


@dataclass
class MoveReport:
    moved: list[str] = field(default_factory=list)  # "node: A -> B"
    kept: list[str] = field(default_factory=list)  # data disks left where nothing uses them
    stopped: str = ""

    def summary(self) -> str:
        lines = [f"rebalance: {len(self.moved)} VM(s) moved"]
        lines += [f"  {m}" for m in self.moved]
        lines += [f"  kept, unused: {k}" for k in self.kept]
        if self.stopped:
            lines.append(f"  STOPPED: {self.stopped}")
        return "\n".join(lines)


class Mover:
    """One rebalance run: the rollout's hosts, gate and state, one move at a time."""

    def __init__(self, run: RolloutRun, conns: Connections) -> None:
        self.r = Rollout(run, conns)
        self.fleet, self.say = run.plan.fleet, run.say
        if self.fleet.placement_file is None:
            raise FleetError(f"{self.fleet.path}: a rebalance needs the placement file")

    def on(self, node: Node, host: str) -> Node:
        return dataclasses.replace(node, host=host)

    def disk_on(self, node: Node, host: str) -> DataDisk | None:
        data = node.group.data_disk
        if data is None:
            return None
        storage = self.r.host(host)[1]
        path = storage.data(node.name, data.serial)
        return next((d for d in storage.data_disks(node.name) if d.path == path), None)

    def record(self, node: Node, move: Move, phase: str) -> None:
        version = self.r.targets[node.group.family].version
        self.r.state.set(self.on(node, move.source), phase, (move.source, move.target), v=version)

    # -- the steps -------------------------------------------------------------------------

    def check(self, node: Node, move: Move) -> None:
        """Everything that can refuse the move, before anything is touched."""
        target = self.r.targets[node.group.family].version
        now = self.r.version(node)
        if now != target:
            raise FleetError(
                f"{node.name} runs {now}, its channel points at {target}: roll it out first "
                "(a move keeps the version it runs)"
            )
        if hvm.lookup(self.r.host(move.target)[0], node.name) is not None:
            raise FleetError(f"{node.name}: a VM of that name is already defined on {move.target}")
        there = self.r.host(move.target)[1].data_disks(node.name)
        if there:
            raise FleetError(
                f"{node.name}: {move.target} already holds "
                f"{', '.join(str(d.path) for d in there)}: never overwritten (delete it by "
                "name if nothing needs it)"
            )
        if node.group.data_disk is not None and self.disk_on(node, move.source) is None:
            raise FleetError(f"{node.name}: its data disk is missing on {move.source}")
        why = self.r.others_ready(node, [node])
        if why:
            raise FleetError(f"{why}: {node.name} is not taken down")

    def prepare(self, node: Node, move: Move) -> None:
        """The template and a fresh overlay on the target (no downtime)."""
        self.r.fresh_overlay(self.on(node, move.target), self.r.targets[node.group.family])

    def stop_source(self, node: Node) -> None:
        if self.r.gate.prestop is not None:
            self.r.gate.prestop(node)
        self.say(f"  {node.name}: shutting down on {node.host}")
        dom = self.r.domain(node)
        if not hvm.stop(dom, self.fleet.rollout.shutdown_timeout_s, self.say):
            hostkeys.start(self.fleet, node, dom)  # up again where it was; nothing copied
            RolloutState(self.fleet).forget(node)
            raise FleetError(
                f"{node.name} did not shut down within {self.fleet.rollout.shutdown_timeout_s} s"
                f" and was powered off: not moved, started again on {node.host} (check its data)"
            )

    def copy_data(self, node: Node, move: Move) -> None:
        """The data disk from source to target, read back on the target and compared."""
        disk = self.disk_on(node, move.source)
        if disk is None:
            return
        src, dst = self.r.host(move.source)[1], self.r.host(move.target)[1]
        serial = node.group.data_disk.serial  # type: ignore[union-attr]  # disk_on checked it
        self.say(f"  {node.name}: copying {disk.size / 2**30:.1f} GiB to {move.target}")
        sent = dst.receive_data(node.name, serial, disk.size, src.read_data(disk))
        copied = self.disk_on(node, move.target)
        got = _sha256(dst.read_data(copied)) if copied is not None else "missing"
        if got != sent:
            raise FleetError(
                f"{node.name}: the copy on {move.target} reads back as {got}, {move.source} "
                f"sent {sent}"
            )

    def switch(self, node: Node, move: Move) -> None:
        """Defined on the target, undefined on the source (its disks stay), started."""
        there = self.on(node, move.target)
        dom = self.r.define(there, self.r.targets[node.group.family])
        old = hvm.lookup(self.r.host(move.source)[0], node.name)
        if old is not None:
            hvm.undefine(old)
        hostkeys.start(self.fleet, there, dom)

    def gate(self, node: Node, move: Move) -> str:
        """'' when the node passed its gate on the target and its cluster is whole."""
        there = self.on(node, move.target)
        result = self.r.gate.wait(there)
        if result.ok:
            result = self.r.others_see(there)
        return "" if result.ok else result.detail

    def finish(self, node: Node, move: Move, report: MoveReport) -> None:
        record_host(self.fleet, node.name, move.target)
        here = self.on(node, move.source)
        self.r.host(move.source)[1].remove_os(node.name)
        KnownHosts(self.fleet).forget(here)
        RolloutState(self.fleet).forget(here)
        disk = self.disk_on(node, move.source)
        report.moved.append(f"{node.name}: {move.source} -> {move.target}")
        if disk is not None:
            report.kept.append(f"{move.source}: {disk.path} (the data disk {node.name} left)")
        self.say(f"{node.name}: moved {move.source} -> {move.target}, gate ok")

    def back(self, node: Node, move: Move, why: str, report: MoveReport) -> NoReturn:
        """Undo a move whose node failed on the target: defined and started on the source
        again from its own disks; what it ran on the target stays."""
        self.record(node, move, BACK)
        self.say(f"  {node.name}: FAILED on {move.target}: {why}; back to {move.source}")
        dst_conn, dst, _ = self.r.host(move.target)
        dom = hvm.lookup(dst_conn, node.name)
        if dom is not None:
            hvm.stop(dom, self.fleet.rollout.shutdown_timeout_s, self.say)
            hvm.undefine(dom)
        dst.remove_os(node.name)
        here = self.on(node, move.source)
        dom = hvm.lookup(self.r.host(move.source)[0], node.name)
        if dom is None:
            dom = self.r.define(here, self.r.targets[node.group.family])
        if not hvm.is_running(dom):
            hostkeys.start(self.fleet, here, dom)
        again = self.r.gate.wait(here)
        RolloutState(self.fleet).forget(here)
        copy = self.disk_on(node, move.target)
        if copy is not None:
            report.kept.append(f"{move.target}: {copy.path} (the copy {node.name} ran on)")
        came = "healthy" if again.ok else f"NOT healthy: {again.detail}"
        raise FleetError(
            f"{node.name} failed on {move.target} ({why}); back on {move.source} ({came})"
        )

    def undo_copy(self, node: Node, move: Move) -> None:
        """Before the switch: the copy on the target goes (this move made it and nothing ran
        on it; the source keeps the disk), the node starts again where it was."""
        copy = self.disk_on(node, move.target)
        if copy is not None:
            self.r.host(move.target)[1].delete_data(copy)
            self.say(f"  {node.name}: the unfinished copy {copy.path} removed")
        self.r.host(move.target)[1].remove_os(node.name)
        dom = self.r.domain(node)
        if not hvm.is_running(dom):
            hostkeys.start(self.fleet, node, dom)
        RolloutState(self.fleet).forget(node)

    # -- one move, and a resumed one ------------------------------------------------------

    def move(self, node: Node, move: Move, report: MoveReport) -> None:
        self.say(f"{node.name}: {move.source} -> {move.target}")
        self.check(node, move)
        self.prepare(node, move)
        self.record(node, move, COPYING)
        self.stop_source(node)
        try:
            self.copy_data(node, move)
        except FactoryError:
            self.undo_copy(node, move)  # the node runs where it was again
            raise
        self.record(node, move, COPIED)
        self.switch(node, move)
        self.record(node, move, STARTED)
        why = self.gate(node, move)
        if why:
            self.back(node, move, why, report)  # raises: the rebalance stops
        self.finish(node, move, report)

    def resume(self, node: Node, entry: dict[str, str], report: MoveReport) -> None:
        """A move a killed run left: copying is undone (the copy on the target was made by
        it, before anything ran on it); later phases are carried to their end."""
        move = Move(node.name, entry["from"], entry["to"], node.group.cluster, 0)
        phase = entry["phase"]
        self.say(f"  {node.name}: resuming its move {move.source} -> {move.target} ({phase})")
        if phase == BACK:
            self.back(node, move, "a run was killed while moving it back", report)
        if phase == COPYING:
            self.undo_copy(node, move)
            return
        if phase == COPIED or hvm.lookup(self.r.host(move.target)[0], node.name) is None:
            self.switch(node, move)
            self.record(node, move, STARTED)
        else:
            dom = hvm.lookup(self.r.host(move.target)[0], node.name)
            old = hvm.lookup(self.r.host(move.source)[0], node.name)
            if old is not None:
                hvm.undefine(old)
            if dom is not None and not hvm.is_running(dom):
                hostkeys.start(self.fleet, self.on(node, move.target), dom)
        why = self.gate(node, move)
        if why:
            self.back(node, move, why, report)
        self.finish(node, move, report)


def _sha256(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def unfinished_moves(fleet: Fleet) -> list[str]:
    """Nodes a killed rebalance left mid-move (the next `fleet.apply --rebalance` ends it)."""
    state = RolloutState(fleet)
    return sorted(
        f"{name} ({entry.get('from')} -> {entry.get('to')}, {entry.get('phase')})"
        for host in fleet.hypervisors
        for name, entry in state.load(host).items()
        if entry.get("phase") in PHASES
    )


def rebalance_fleet(
    fleet: Fleet, make_run: Callable[[FleetPlan], RolloutRun], conns: Connections | None = None
) -> MoveReport:
    """Finish what a killed rebalance left, then make the proposed moves one after another,
    the plan read again from the placement file after each; the first failure stops the
    rebalance (its node back where it was)."""
    report = MoveReport()
    with hvm.connections(conns) as pool, RolloutState(fleet).locked():
        try:
            plan = plan_fleet(fleet)
            mover = Mover(make_run(plan), pool)
            for host in sorted(fleet.hypervisors):
                for name, entry in sorted(mover.r.state.load(host).items()):
                    if entry.get("phase") in PHASES and name in plan.nodes:
                        node = dataclasses.replace(plan.nodes[name], host=entry["from"])
                        mover.resume(node, entry, report)
            plan = plan_fleet(fleet)
            for m in propose_moves(plan):
                Mover(make_run(plan), pool).move(plan.nodes[m.node], m, report)
                plan = plan_fleet(fleet)
        except FactoryError as exc:
            report.stopped = str(exc)
    return report
