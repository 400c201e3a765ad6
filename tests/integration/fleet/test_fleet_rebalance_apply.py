"""fleet.apply --rebalance on libvirt's test driver: a fourth host added to an applied fleet
gets VMs, one move at a time, each data disk carried with its VM byte for byte and left on
the old host; a move whose node fails its gate goes back; a killed move is undone; a disk
on the target is never overwritten."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from imagefactory.fleet import commands
from imagefactory.fleet.apply import live_fleet_metadata
from imagefactory.fleet.config import load_fleet
from imagefactory.fleet.health import Health
from imagefactory.fleet.hypervisor import Connections, FleetError, is_running, lookup
from imagefactory.fleet.move import Mover, unfinished_moves
from imagefactory.fleet.nodes import Node, plan_fleet
from imagefactory.fleet.rebalance import propose_moves
from imagefactory.fleet.storage import LocalFiles
from tests.fleetkit import TemplateStore, group, simulated_host, three_simulated_hosts, write_fleet
from tests.rolloutkit import SMALL

pytestmark = pytest.mark.integration
MARK = b"rows of pers-ms, written before the move"


class Gatekeeper:
    """The health gate: every other member of the node's cluster runs where the placement
    file puts it while the node is checked (one member away at a time); fails on cue."""

    def __init__(self, path: Path, conns: Connections, fail: set[str] = frozenset()) -> None:
        self.path, self.conns, self.fail = path, conns, set(fail)
        self.calls: list[tuple[str, str]] = []

    def running(self, node: Node) -> bool:
        dom = lookup(self.conns.get(load_fleet(self.path).hypervisors[node.host]), node.name)
        return dom is not None and is_running(dom)

    def __call__(self, node: Node) -> Health:
        plan = plan_fleet(load_fleet(self.path))
        assert self.running(node), f"{node.name} is not running on {node.host}"
        for g in plan.fleet.clusters()[node.group.cluster]:
            for other in g.node_names:
                if other != node.name:
                    assert self.running(plan.nodes[other]), f"{other} down beside {node.name}"
        self.calls.append((node.name, node.host))
        if node.name in self.fail:
            self.fail.discard(node.name)
            return Health(False, "role service failed to start", final=True)
        return Health(True, "configured")


@pytest.fixture
def grown(tmp_path: Path, template_store: TemplateStore):
    """Applied on three hosts, then hv-d added: the placement file keeps it empty."""
    hosts = three_simulated_hosts(tmp_path)
    groups = {
        "pers-ms": group(
            "REDPANDA",
            "persistence",
            3,
            "cluster",
            "ms-main",
            ("DATA_MS", 1),
            vcpu=4,
            memory_gib=16,
            os_disk_gb=1,
        ),
        "wrk-app": group("APP", "workers", 3, "independent", "wrk-app", **SMALL),
    }
    path = write_fleet(tmp_path, hosts, groups, store=template_store.store_section())
    for family in ("persistence", "workers"):
        template_store.publish(family, tmp_path / "sealed", day=24)
    conns = Connections()
    commands.apply(path, conns=conns)
    doc = yaml.safe_load(path.read_text())
    doc["hypervisors"]["hv-d"] = {
        **hosts["hv-a"],
        "uri": simulated_host(tmp_path, "hv-d"),
        "storage_dir": str(tmp_path / "hv-d"),
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    yield path, conns
    conns.close()


def where(path: Path) -> dict[str, str]:
    placement = load_fleet(path).placement_file
    assert placement is not None
    return {n: s["host"] for n, s in json.loads(placement.read_text())["nodes"].items()}


def defined_on(conns: Connections, path: Path, node: str) -> list[str]:
    fleet = load_fleet(path)
    return [h for h, hv in sorted(fleet.hypervisors.items()) if lookup(conns.get(hv), node)]


def data_file(root: Path, host: str, node: str) -> Path:
    return root / host / "vms" / node / "data-data_ms.raw"


def write_mark(root: Path, host: str, node: str) -> None:
    with data_file(root, host, node).open("r+b") as fh:
        fh.seek(5 * 2**20)
        fh.write(MARK)


def read_mark(root: Path, host: str, node: str) -> bytes:
    with data_file(root, host, node).open("rb") as fh:
        fh.seek(5 * 2**20)
        return fh.read(len(MARK))


def first_move(path: Path) -> Any:
    moves = propose_moves(plan_fleet(load_fleet(path)))
    assert moves and moves[0].target == "hv-d" and moves[0].node.startswith("pers-ms"), moves
    return moves[0]


def test_rebalance_fills_the_new_host_one_move_at_a_time(grown, tmp_path: Path) -> None:
    """Every proposed move made: each node gated on its new host with its cluster whole, the
    placement file follows, the data disk's bytes arrive, the old one is kept and named."""
    path, conns = grown
    move = first_move(path)
    write_mark(tmp_path, move.source, move.node)
    proposed = propose_moves(plan_fleet(load_fleet(path)))
    gate = Gatekeeper(path, conns)
    out = commands.rebalance(path, conns=conns, health=gate)
    assert gate.calls == [(m.node, m.target) for m in proposed]
    placed = where(path)
    for m in proposed:
        assert placed[m.node] == m.target
        assert defined_on(conns, path, m.node) == [m.target]
        assert f"{m.node}: {m.source} -> {m.target}" in out
    assert read_mark(tmp_path, move.target, move.node) == MARK
    assert read_mark(tmp_path, move.source, move.node) == MARK  # kept, never deleted
    assert f"kept, unused: {move.source}: {data_file(tmp_path, move.source, move.node)}" in out
    assert not list((tmp_path / move.source / "vms" / move.node).glob("os-*.qcow2"))
    assert unfinished_moves(load_fleet(path)) == []
    assert commands.rebalance(path, conns=conns, health=gate) == "rebalance: 0 VM(s) moved"
    report = commands.apply(path, conns=conns)
    assert set(report.actions.values()) == {"unchanged"}, report.actions


def test_a_node_failing_on_the_new_host_goes_back(grown, tmp_path: Path) -> None:
    """Its gate fails on hv-d: stopped and undefined there, running again on its old host from
    its own disks, the placement unchanged, the copy it ran on kept and named, the rest of
    the rebalance not made."""
    path, conns = grown
    move = first_move(path)
    before = where(path)
    gate = Gatekeeper(path, conns, fail={move.node})
    with pytest.raises(FleetError, match=rf"{move.node} failed on hv-d \(role service"):
        commands.rebalance(path, conns=conns, health=gate)
    assert where(path) == before
    assert defined_on(conns, path, move.node) == [move.source]
    assert gate.calls == [(move.node, "hv-d"), (move.node, move.source)]
    fleet = load_fleet(path)
    dom = lookup(conns.get(fleet.hypervisors[move.source]), move.node)
    assert is_running(dom) and live_fleet_metadata(dom)["version"]
    assert data_file(tmp_path, "hv-d", move.node).exists()  # it ran on it: kept
    assert data_file(tmp_path, move.source, move.node).exists()
    assert unfinished_moves(fleet) == []


def test_a_move_killed_while_copying_is_undone_then_made(
    grown, tmp_path: Path, monkeypatch
) -> None:
    """Killed in the copy: rollout and apply refuse until the rebalance ends it; the next
    rebalance removes the unfinished copy, starts the node where it was, then moves it."""
    path, conns = grown
    move = first_move(path)
    write_mark(tmp_path, move.source, move.node)
    real = Mover.copy_data

    def dies_halfway(self, node, m):
        dst = self.r.host(m.target)[1]
        chunks = iter(self.r.host(m.source)[1].read_data(self.disk_on(node, m.source)))

        def half():
            yield next(chunks)
            raise KeyboardInterrupt

        dst.receive_data(node.name, node.group.data_disk.serial, 2**30, half())

    monkeypatch.setattr(Mover, "copy_data", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        commands.rebalance(path, conns=conns, health=Gatekeeper(path, conns))
    monkeypatch.setattr(Mover, "copy_data", real)
    assert unfinished_moves(load_fleet(path)) == [
        f"{move.node} ({move.source} -> hv-d, move-copying)"
    ]
    with pytest.raises(FleetError, match="a rebalance was cut short mid-move"):
        commands.apply(path, conns=conns)
    gate = Gatekeeper(path, conns)
    commands.rebalance(path, conns=conns, health=gate)
    assert where(path)[move.node] == "hv-d"
    assert read_mark(tmp_path, "hv-d", move.node) == MARK
    assert gate.calls[0] == (move.node, "hv-d")
    assert unfinished_moves(load_fleet(path)) == []


def test_a_data_disk_on_the_target_is_never_overwritten(grown, tmp_path: Path) -> None:
    """hv-d already holds a disk by the node's name: the move is refused before any downtime
    and the disk keeps its bytes."""
    path, conns = grown
    move = first_move(path)
    there = data_file(tmp_path, "hv-d", move.node)
    there.parent.mkdir(parents=True)
    there.write_bytes(b"somebody's data")
    gate = Gatekeeper(path, conns)
    with pytest.raises(FleetError, match=rf"hv-d already holds {there}: never overwritten"):
        commands.rebalance(path, conns=conns, health=gate)
    assert there.read_bytes() == b"somebody's data"
    assert gate.calls == []
    assert defined_on(conns, path, move.node) == [move.source]


def test_dry_run_prints_the_moves(grown) -> None:
    """--dry-run: the numbered proposal, nothing touched."""
    path, conns = grown
    before = where(path)
    out = commands.rebalance(path, dry_run=True, conns=conns)
    assert out.startswith("rebalance: ") and "  1. pers-ms-" in out
    assert where(path) == before


def test_a_copy_that_reads_back_wrong_is_undone_at_once(grown, tmp_path: Path, monkeypatch) -> None:
    """The copy on hv-d does not read back as the bytes sent (a bad disk there): the copy is
    removed, the node runs again on its old host, the placement is unchanged."""
    path, conns = grown
    move = first_move(path)
    real = LocalFiles.receive_data

    def rots(self, node, serial, size, chunks):
        sent = real(self, node, serial, size, chunks)
        with self.data(node, serial).open("r+b") as fh:
            fh.write(b"bit rot")
        return sent

    monkeypatch.setattr(LocalFiles, "receive_data", rots)
    before = where(path)
    with pytest.raises(FleetError, match=rf"{move.node}: the copy on hv-d reads back as"):
        commands.rebalance(path, conns=conns, health=Gatekeeper(path, conns))
    assert where(path) == before
    assert not data_file(tmp_path, "hv-d", move.node).exists()
    dom = lookup(conns.get(load_fleet(path).hypervisors[move.source]), move.node)
    assert is_running(dom)
    assert unfinished_moves(load_fleet(path)) == []
