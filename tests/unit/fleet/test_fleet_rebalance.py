"""A host the placement file keeps empty: fleet.plan names it, and --rebalance proposes moves
that keep every cluster's quorum after each step."""

from __future__ import annotations

from pathlib import Path

import yaml

from imagefactory.fleet import commands
from imagefactory.fleet.config import load_fleet
from imagefactory.fleet.model import quorum
from imagefactory.fleet.nodes import FleetPlan, plan_fleet, write_state
from imagefactory.fleet.rebalance import propose_moves
from tests.fleetkit import hypervisor, production_with


def seventh_host_added(tmp_path: Path) -> tuple[Path, FleetPlan]:
    """Production on 6 hosts, recorded as applied; then kvm-07 added to the fleet file."""
    path = production_with(tmp_path, 6)
    write_state(plan_fleet(load_fleet(path)))
    doc = yaml.safe_load(path.read_text())
    doc["hypervisors"]["kvm-07"] = hypervisor("qemu+ssh://root@kvm-07/system", "/srv/fleet")
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path, plan_fleet(load_fleet(path))


def test_plan_names_the_host_kept_empty(tmp_path: Path) -> None:
    """The new host holds nothing (no VM moves by itself) and the plan says so."""
    path, plan = seventh_host_added(tmp_path)
    assert plan.placement.nodes_on("kvm-07") == []
    assert (
        "empty: kvm-07 (the placement file keeps every VM where it is; "
        "`fleet.plan --rebalance` proposes moves)"
    ) in commands.plan(path).splitlines()


def test_a_fresh_fleet_names_no_empty_host(tmp_path: Path) -> None:
    """Six hosts, nothing recorded: every host gets VMs, no 'empty:' line."""
    assert "empty:" not in commands.plan(production_with(tmp_path, 6))


def test_every_step_of_the_rebalance_keeps_every_quorum(tmp_path: Path) -> None:
    """Moves made one by one: after each, losing any one host leaves every cluster a
    majority and no host is over capacity; the empty host ends with VMs."""
    _, plan = seventh_host_added(tmp_path)
    moves = propose_moves(plan)
    assert len(moves) == 9
    where = {n.name: n.host for n in plan.nodes.values()}
    fleet = plan.fleet
    for move in moves:
        assert where[move.node] == move.source
        where[move.node] = move.target
        for groups in fleet.clusters().values():
            if groups[0].topology.value != "cluster":
                continue
            members = [n for g in groups for n in g.node_names]
            for host in fleet.hypervisors:
                left = sum(1 for m in members if where[m] != host)
                assert left >= quorum(len(members)), (move, host)
        for host, hv in fleet.hypervisors.items():
            on = [fleet.group_of(n) for n, h in where.items() if h == host]
            assert sum(g.size.memory_gib for g in on) <= hv.usable.memory_gib
            assert sum(g.size.vcpu for g in on) <= hv.usable.vcpu
            assert sum(g.storage_gb for g in on) <= hv.usable.storage_gb
    assert sum(1 for h in where.values() if h == "kvm-07") == 9


def test_rebalance_is_printed_one_move_a_line(tmp_path: Path) -> None:
    """--rebalance prints a numbered line per move with the cluster's members up."""
    path, _ = seventh_host_added(tmp_path)
    lines = commands.plan(path, rebalance=True).splitlines()
    steps = [ln for ln in lines if ln.startswith("  ") and " -> kvm-07 " in ln]
    assert len(steps) == 9
    assert (
        steps[0]
        == "  1. pers-ds-node-05: kvm-05 -> kvm-07 (cluster ds-main: 4 of 5 up during the move)"
    )
