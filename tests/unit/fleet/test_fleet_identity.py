"""MAC and UUID collisions: resolved the same way every time, recorded in the placement file,
and a node's identity never changes once recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagefactory.errors import ConfigError
from imagefactory.fleet.config import load_fleet
from imagefactory.fleet.model import Fleet
from imagefactory.fleet.nodes import node_mac, node_uuid, plan_fleet, write_state
from tests.fleetkit import group, hypervisor, write_fleet

HOST = {"hv-a": hypervisor("test:///default", "/srv/fleet")}
# Two node names whose first MAC candidate is the same in fleet "test" (found by search).
A, B = "wrk-x5063-01", "wrk-x6324-01"
SHARED_MAC = "52:54:00:b1:ca:c7"


def two_nodes(tmp_path: Path, a: str = "wrk-x5063", b: str = "wrk-x6324") -> Fleet:
    groups = {name: group("APP", "workers", 1, "independent", name) for name in (a, b)}
    return load_fleet(write_fleet(tmp_path, HOST, groups))


def recorded(fleet: Fleet) -> dict[str, dict[str, str]]:
    assert fleet.placement_file is not None
    nodes: dict[str, dict[str, str]] = json.loads(fleet.placement_file.read_text())["nodes"]
    return nodes


def record(fleet: Fleet, nodes: dict[str, dict[str, str]], version: int = 2) -> None:
    assert fleet.placement_file is not None
    doc = {"version": version, "fleet": fleet.name, "nodes": nodes}
    fleet.placement_file.write_text(json.dumps(doc))


def test_the_two_names_really_collide(tmp_path: Path) -> None:
    """The test's premise: both names' first MAC candidate is the same."""
    fleet = two_nodes(tmp_path)
    assert node_mac(fleet, A) == node_mac(fleet, B) == SHARED_MAC


def test_a_forced_collision_gives_the_later_name_the_next_candidate(tmp_path: Path) -> None:
    """Without a record, the first name by order keeps the hash; the other takes the next."""
    plan = plan_fleet(two_nodes(tmp_path))
    assert (plan.nodes[A].mac, plan.nodes[B].mac) == (SHARED_MAC, "52:54:00:2a:77:62")


def test_resolved_identities_are_recorded_and_kept(tmp_path: Path) -> None:
    """The placement file records each node's MAC and UUID; the next plan reads them back."""
    fleet = two_nodes(tmp_path)
    write_state(plan_fleet(fleet))
    nodes = recorded(fleet)
    assert (nodes[A]["mac"], nodes[B]["mac"]) == (SHARED_MAC, "52:54:00:2a:77:62")
    again = plan_fleet(fleet)
    assert {n: (again.nodes[n].mac, again.nodes[n].uuid) for n in (A, B)} == {
        n: (nodes[n]["mac"], nodes[n]["uuid"]) for n in (A, B)
    }


def test_a_recorded_node_keeps_its_mac_against_an_earlier_name(tmp_path: Path) -> None:
    """B was applied first (recorded with the shared MAC); A, added later, takes the next
    candidate although its name comes first: B's identity never changes."""
    fleet = two_nodes(tmp_path)
    record(
        fleet,
        {B: {"host": "hv-a", "ip": "10.20.0.50", "mac": SHARED_MAC, "uuid": node_uuid(fleet, B)}},
    )
    plan = plan_fleet(fleet)
    assert (plan.nodes[B].mac, plan.nodes[A].mac) == (SHARED_MAC, "52:54:00:c1:51:3d")


def test_a_version_1_record_keeps_the_first_candidate(tmp_path: Path) -> None:
    """A placement file from before identities were recorded (host and ip only): its nodes
    had the first candidate and keep it; the new node moves aside."""
    fleet = two_nodes(tmp_path)
    record(fleet, {B: {"host": "hv-a", "ip": "10.20.0.50"}}, version=1)
    plan = plan_fleet(fleet)
    assert (plan.nodes[B].mac, plan.nodes[A].mac) == (SHARED_MAC, "52:54:00:c1:51:3d")


def test_a_uuid_collision_is_resolved_too(tmp_path: Path) -> None:
    """wrk-b-01 recorded with the UUID wrk-a-01's name hashes to: wrk-a-01 takes the next."""
    fleet = two_nodes(tmp_path, "wrk-a", "wrk-b")
    taken = node_uuid(fleet, "wrk-a-01")
    assert taken == "18d0fc26-a5cc-52a5-b22e-968df802888c"
    record(
        fleet,
        {
            "wrk-b-01": {
                "host": "hv-a",
                "ip": "10.20.0.50",
                "mac": "52:54:00:00:00:01",
                "uuid": taken,
            }
        },
    )
    plan = plan_fleet(fleet)
    assert plan.nodes["wrk-b-01"].uuid == taken
    assert plan.nodes["wrk-a-01"].uuid == "b54bd846-b202-5fb1-ab4d-e8088ab58c74"


def test_a_mac_recorded_twice_is_refused_with_file_and_field(tmp_path: Path) -> None:
    """Two nodes recorded with one MAC: the placement file and the second node's field."""
    fleet = two_nodes(tmp_path)
    same = {"host": "hv-a", "mac": SHARED_MAC}
    record(fleet, {A: {**same, "ip": "10.20.0.50"}, B: {**same, "ip": "10.20.0.51"}})
    with pytest.raises(ConfigError) as err:
        plan_fleet(fleet)
    assert [(p.file, p.path, p.message) for p in err.value.problems] == [
        (str(fleet.placement_file), f".nodes.{B}.mac", f"{SHARED_MAC} is recorded for {A} too")
    ]


def test_a_malformed_mac_makes_the_file_unreadable(tmp_path: Path) -> None:
    """A recorded MAC outside 52:54:00 is reported as an unreadable placement file."""
    fleet = two_nodes(tmp_path)
    record(fleet, {A: {"host": "hv-a", "ip": "10.20.0.50", "mac": "00:11:22:33:44:55"}})
    with pytest.raises(ConfigError, match="mac '00:11:22:33:44:55' is not 52:54:00"):
        plan_fleet(fleet)
