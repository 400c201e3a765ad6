"""Placement: capacity, a quorum for every cluster after losing any one host, stability."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from imagefactory.fleet.config import load_fleet
from imagefactory.fleet.model import quorum
from imagefactory.fleet.nodes import plan_fleet, write_state
from imagefactory.fleet.placement import PlacementError
from tests.fleetkit import group, hypervisor, production_with, write_fleet


def test_losing_any_host_leaves_every_cluster_a_quorum(tmp_path: Path) -> None:
    """On 6 hosts, every cluster keeps a majority whichever single host fails."""
    plan = plan_fleet(load_fleet(production_with(tmp_path, 6)))
    for cluster, groups in plan.fleet.clusters().items():
        members = [n for g in groups for n in g.node_names]
        if groups[0].topology.value != "cluster":
            continue
        for host in plan.fleet.hypervisors:
            left = [m for m in members if plan.nodes[m].host != host]
            assert len(left) >= quorum(len(members)), (cluster, host)


def test_capacity_is_never_exceeded(tmp_path: Path) -> None:
    """No host gets more vCPU, memory or storage than it offers."""
    plan = plan_fleet(load_fleet(production_with(tmp_path, 6)))
    for name, use in plan.placement.use.items():
        cap = plan.fleet.hypervisors[name].usable
        assert use.vcpu <= cap.vcpu and use.memory_gib <= cap.memory_gib
        assert use.storage_gb <= cap.storage_gb
    assert sum(len(u.nodes) for u in plan.placement.use.values()) == 71


def test_too_few_hosts_for_quorum_names_the_group(tmp_path: Path) -> None:
    """Two hosts cannot keep a 5-node ScyllaDB cluster's quorum: the failure says so."""
    with pytest.raises(PlacementError) as err:
        plan_fleet(load_fleet(production_with(tmp_path, 2, storage_gb=99000)))
    assert (
        "pers-ds-node: 5 nodes need 3 hosts for quorum (cluster ds-main, at most 2 per "
        "host), 2 given"
    ) in err.value.problems


def test_too_little_capacity_names_the_shortage(tmp_path: Path) -> None:
    """Six hosts of 32 vCPU cannot hold 284 vCPU."""
    with pytest.raises(PlacementError) as err:
        plan_fleet(load_fleet(production_with(tmp_path, 6, vcpu=32)))
    assert (
        "fleet needs 284 vCPU, the hypervisors offer 192 (capacity x overcommit)"
        in err.value.problems
    )


def test_memory_is_not_overcommitted_by_default(tmp_path: Path) -> None:
    """568 GiB does not fit in 6 x 90 GiB unless the fleet file allows overcommit."""
    with pytest.raises(PlacementError) as err:
        plan_fleet(load_fleet(production_with(tmp_path, 6, memory_gib=90)))
    assert "fleet needs 568 GiB memory, the hypervisors offer 540" in err.value.problems[0]


def test_a_node_that_fits_nowhere_is_named(tmp_path: Path) -> None:
    """Enough memory in total but on no single host: the group, node and each host's gap."""
    hosts = {
        name: hypervisor(f"test:///{name}", "/srv", vcpu=8, memory_gib=16, storage_gb=500)
        for name in ("hv-a", "hv-b")
    }
    path = write_fleet(
        tmp_path, hosts, {"wrk-app": group("APP", "workers", 1, "independent", "w", memory_gib=24)}
    )
    with pytest.raises(PlacementError) as err:
        plan_fleet(load_fleet(path))
    assert err.value.problems == (
        "wrk-app: node wrk-app-01 (4 vCPU, 24 GiB, 64 GB) fits no hypervisor (hv-a: 16 GiB "
        "memory free, 24 needed; hv-b: 16 GiB memory free, 24 needed)",
    )


def _grow(path: Path, key: str, name: str, value: dict) -> None:
    doc = yaml.safe_load(path.read_text())
    doc[key][name] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_adding_a_host_moves_no_vm(tmp_path: Path) -> None:
    """After an apply recorded the placement, a seventh host changes no VM's host or IP."""
    path = production_with(tmp_path, 6)
    before = plan_fleet(load_fleet(path))
    write_state(before)
    _grow(path, "hypervisors", "kvm-07", hypervisor("qemu+ssh://root@kvm-07/system", "/srv"))
    after = plan_fleet(load_fleet(path))
    assert {n: (v.host, v.ip) for n, v in after.nodes.items()} == {
        n: (v.host, v.ip) for n, v in before.nodes.items()
    }
    assert after.placement.moved == ()


def test_adding_a_group_moves_no_vm(tmp_path: Path) -> None:
    """A new group is placed around the VMs already placed; their hosts and IPs stay."""
    path = production_with(tmp_path, 6)
    before = plan_fleet(load_fleet(path))
    write_state(before)
    _grow(path, "groups", "wrk-report-b", group("REPORT", "workers", 3, "independent", "rb"))
    after = plan_fleet(load_fleet(path))
    for name, node in before.nodes.items():
        assert (after.nodes[name].host, after.nodes[name].ip) == (node.host, node.ip)
    assert len(after.nodes) == 74


def test_a_removed_host_moves_only_its_vms(tmp_path: Path) -> None:
    """With a host gone, only its VMs move, and they are listed as moved."""
    path = production_with(tmp_path, 7)
    before = plan_fleet(load_fleet(path))
    write_state(before)
    doc = yaml.safe_load(path.read_text())
    del doc["hypervisors"]["kvm-07"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    after = plan_fleet(load_fleet(path))
    gone = sorted(n for n, v in before.nodes.items() if v.host == "kvm-07")
    assert gone and sorted(after.placement.moved) == gone
    for name, node in before.nodes.items():
        if name not in gone:
            assert after.nodes[name].host == node.host
