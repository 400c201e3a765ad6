"""Placement, for every small fleet: the plan (plan_fleet, whatever algorithm is behind it)
puts every node on a hypervisor of the file, never past a host's usable capacity, and
leaves every cluster a quorum after the loss of any one host; or placement says it cannot."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from imagefactory.errors import ConfigError
from imagefactory.fleet.config import load_fleet
from imagefactory.fleet.model import Topology
from imagefactory.fleet.nodes import plan_fleet
from imagefactory.fleet.placement import PlacementError
from tests.fleetkit import group, hypervisor, write_fleet
from tests.propertykit import PROPERTIES

# Groups as the shipped fleet names them (App-Core's hostname patterns): role, family, disk.
POOL = {
    "wrk-app": ("APP", "workers", None),
    "wrk-api": ("API", "workers", None),
    "wrk-report": ("REPORT", "workers", None),
    "pers-ms": ("REDPANDA", "persistence", "DATA_MS"),
    "pers-mg": ("HAZELCAST", "persistence", "DATA_MG"),
}


@st.composite
def fleets(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """1-8 hypervisors of random capacity; 1-4 groups of random count, topology and size
    (cluster groups have 3 or more nodes: the fleet file refuses fewer)."""
    hosts = {
        f"kvm-{i:02d}": hypervisor(
            f"test:///kvm-{i:02d}",
            "/srv/fleet",
            vcpu=draw(st.integers(2, 48)),
            memory_gib=draw(st.integers(4, 96)),
            storage_gb=draw(st.integers(100, 4000)),
        )
        for i in range(1, draw(st.integers(1, 8)) + 1)
    }
    groups = {}
    for name in draw(st.lists(st.sampled_from(sorted(POOL)), min_size=1, max_size=4, unique=True)):
        role, family, serial = POOL[name]
        topology = draw(st.sampled_from(["cluster", "independent"]))
        count = draw(st.integers(3 if topology == "cluster" else 1, 7))
        disk = (serial, draw(st.integers(10, 400))) if serial else None
        groups[name] = group(
            role,
            family,
            count,
            topology,
            name,
            disk,
            vcpu=draw(st.integers(1, 8)),
            memory_gib=draw(st.integers(1, 16)),
            os_disk_gb=draw(st.integers(8, 80)),
        )
    return hosts, groups


@pytest.fixture(scope="module")
def place_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fleets")


@PROPERTIES
@given(drawn=fleets())
def test_plans_honour_capacity_and_keep_quorum(
    place_dir: Path, drawn: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """Every node on a host of the file, no host past its usable capacity, and every cluster
    keeps a majority of its nodes when any one host is lost."""
    hosts, groups = drawn
    try:
        fleet = load_fleet(write_fleet(place_dir, hosts, groups))
    except ConfigError as err:  # the drawn fleet must be one the file accepts
        raise AssertionError(f"the strategy drew a refused fleet: {err}") from None
    try:
        plan = plan_fleet(fleet, fresh=True)
    except PlacementError as err:
        assert err.problems
        event("cannot place")
        return
    event("placed")
    on = plan.placement.hosts
    assert sorted(on) == sorted(n for g in fleet.groups.values() for n in g.node_names)
    assert set(on.values()) <= set(fleet.hypervisors)
    for host, hv in fleet.hypervisors.items():
        mine = [fleet.group_of(n) for n, h in on.items() if h == host]
        assert sum(g.size.vcpu for g in mine) <= hv.usable.vcpu, host
        assert sum(g.size.memory_gib for g in mine) <= hv.usable.memory_gib, host
        assert sum(g.storage_gb for g in mine) <= hv.usable.storage_gb, host
    for cluster, members in fleet.clusters().items():
        if {g.topology for g in members} != {Topology.CLUSTER}:
            continue
        nodes = [n for g in members for n in g.node_names]
        per_host = Counter(on[n] for n in nodes)
        for host in fleet.hypervisors:
            left = len(nodes) - per_host[host]
            assert left > len(nodes) // 2, (cluster, host, dict(per_host))
