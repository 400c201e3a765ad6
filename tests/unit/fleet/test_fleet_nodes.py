"""Stable identity per node: MAC, UUID and IP derived from the name; peers per cluster."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from imagefactory.fleet.config import load_fleet
from imagefactory.fleet.nodes import assign_addresses, node_mac, node_uuid, plan_fleet
from tests.fleetkit import production_with


def test_identity_is_a_function_of_the_name(tmp_path: Path) -> None:
    """The same fleet and node name give the same MAC and UUID; another name another."""
    fleet = load_fleet(production_with(tmp_path, 6))
    assert node_mac(fleet, "pers-db-master-01") == node_mac(fleet, "pers-db-master-01")
    assert node_mac(fleet, "pers-db-master-01") != node_mac(fleet, "pers-db-master-02")
    assert re.fullmatch(r"52:54:00(:[0-9a-f]{2}){3}", node_mac(fleet, "pers-ms-01"))
    assert node_uuid(fleet, "pers-ms-01") == node_uuid(fleet, "pers-ms-01")


def test_addresses_are_unique_and_in_range(tmp_path: Path) -> None:
    """71 distinct addresses in the subnet, none below first_host, none the gateway or DNS."""
    plan = plan_fleet(load_fleet(production_with(tmp_path, 6)))
    ips = [n.ip for n in plan.nodes.values()]
    assert len(set(ips)) == 71
    net = ipaddress.IPv4Network("10.20.0.0/22")
    for ip in ips:
        assert ip in net and int(ip) >= int(net.network_address) + 16
        assert str(ip) not in ("10.20.0.1", "10.20.0.2", "10.20.0.3", "10.20.3.255")


def test_recorded_addresses_are_kept(tmp_path: Path) -> None:
    """An address recorded by a previous apply stays, even where the hash points elsewhere."""
    fleet = load_fleet(production_with(tmp_path, 6))
    ips = assign_addresses(fleet, {"wrk-pg-01": "10.20.3.200"})
    assert str(ips["wrk-pg-01"]) == "10.20.3.200"
    assert list(ips.values()).count(ipaddress.IPv4Address("10.20.3.200")) == 1


def test_peers_are_the_whole_cluster(tmp_path: Path) -> None:
    """PXC writers and read-only members share cluster pxc-main: 8 peers each; stand-alone
    round-robin nodes and workers get none."""
    plan = plan_fleet(load_fleet(production_with(tmp_path, 6)))
    master, ro = plan.nodes["pers-db-master-01"], plan.nodes["pers-db-ro-03"]
    assert len(master.peers) == 8 and master.peers == ro.peers and master.ip in master.peers
    assert plan.nodes["pers-db-rr7d-01"].peers == ()
    assert plan.nodes["wrk-app-01"].peers == ()
