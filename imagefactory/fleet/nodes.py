"""Per-VM records: name, host, stable MAC, UUID and IP derived from the name, cluster peers.

The MAC and UUID are pure functions of the fleet and node names. The IP starts from a hash of
the name and probes upward past addresses already taken; addresses recorded in the placement
file are kept, so a node added later never takes an address another node already has.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagefactory.errors import ConfigError, Problem
from imagefactory.fleet.model import Fleet, Group, Topology
from imagefactory.fleet.placement import Placement, place
from imagefactory.util.fsutil import write_json_atomic

STATE_VERSION = 1


@dataclass(frozen=True)
class Node:
    name: str  # also its hostname and libvirt domain name
    group: Group
    host: str
    ip: ipaddress.IPv4Address
    mac: str
    uuid: str
    peers: tuple[ipaddress.IPv4Address, ...]  # every member of its cluster, itself included


@dataclass(frozen=True)
class FleetPlan:
    fleet: Fleet
    placement: Placement
    nodes: Mapping[str, Node]

    def on_host(self, host: str) -> list[Node]:
        return [self.nodes[n] for n in self.placement.nodes_on(host)]


def _digest(fleet: Fleet, node: str) -> bytes:
    return hashlib.sha256(f"imagefactory-fleet:{fleet.name}:{node}".encode()).digest()


def node_mac(fleet: Fleet, node: str) -> str:
    """52:54:00 (QEMU's locally administered prefix) and three bytes of the name's hash."""
    return "52:54:00:" + ":".join(f"{b:02x}" for b in _digest(fleet, node)[:3])


def node_uuid(fleet: Fleet, node: str) -> str:
    # Stable: libvirt refuses to redefine a name under another UUID.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"imagefactory-fleet:{fleet.name}:{node}"))


def assign_addresses(fleet: Fleet, previous: Mapping[str, str]) -> dict[str, ipaddress.IPv4Address]:
    net = fleet.network
    first = int(net.subnet.network_address) + net.first_host
    span = net.subnet.num_addresses - 1 - net.first_host  # the broadcast address stays free
    reserved = {net.gateway, *net.dns}
    names = [n for g in fleet.groups.values() for n in g.node_names]
    out: dict[str, ipaddress.IPv4Address] = {}
    taken = set(reserved)
    for node in sorted(names):
        old = previous.get(node)
        if old is None:
            continue
        try:
            addr = ipaddress.IPv4Address(old)
        except ValueError:
            raise ConfigError(
                [
                    Problem(
                        str(fleet.placement_file),
                        f".nodes.{node}.ip",
                        f"{old!r} is not an IPv4 address",
                    )
                ]
            ) from None
        if addr in net.subnet and int(addr) >= first and addr not in taken:
            out[node] = addr
            taken.add(addr)
    for node in sorted(names):
        if node in out:
            continue
        start = int.from_bytes(_digest(fleet, node)[3:7], "big") % span
        for step in range(span):
            addr = ipaddress.IPv4Address(first + (start + step) % span)
            if addr not in taken:
                out[node] = addr
                taken.add(addr)
                break
        else:
            raise ConfigError(
                [
                    Problem(
                        str(fleet.path),
                        ".network.subnet",
                        f"no free address left in {net.subnet} for {node}",
                    )
                ]
            )
    return out


def read_state(fleet: Fleet) -> dict[str, dict[str, str]]:
    """node -> {host, ip} as the last apply left it; empty before the first apply."""
    path = fleet.placement_file
    if path is None or not path.exists():
        return {}
    try:
        doc: Any = json.loads(path.read_text())
        nodes = doc["nodes"]
        if doc.get("fleet") != fleet.name or not isinstance(nodes, dict):
            raise ValueError("not this fleet's placement")
        return {str(k): {"host": str(v["host"]), "ip": str(v["ip"])} for k, v in nodes.items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            [
                Problem(
                    str(path),
                    ".nodes",
                    f"unreadable placement file: {exc}",
                    "restore it from backup, or remove it to place afresh (VMs may then move)",
                )
            ]
        ) from None


def write_state(plan: FleetPlan, path: Path | None = None) -> None:
    path = path or plan.fleet.placement_file
    if path is None:
        return
    nodes = {
        n.name: {"host": n.host, "ip": str(n.ip), "group": n.group.name}
        for n in plan.nodes.values()
    }
    write_json_atomic(
        path,
        {"version": STATE_VERSION, "fleet": plan.fleet.name, "nodes": dict(sorted(nodes.items()))},
    )


def plan_fleet(fleet: Fleet, fresh: bool = False) -> FleetPlan:
    """Placement and per-node records; keeps the previous hosts and addresses unless fresh."""
    state = {} if fresh else read_state(fleet)
    placement = place(fleet, {n: s["host"] for n, s in state.items()})
    ips = assign_addresses(fleet, {n: s["ip"] for n, s in state.items()})
    macs: dict[str, str] = {}
    problems = []
    for group in fleet.groups.values():
        for node in group.node_names:
            mac = node_mac(fleet, node)
            if mac in macs:
                problems.append(
                    Problem(
                        str(fleet.path),
                        f".groups.{group.name}",
                        f"{node} and {macs[mac]} hash to the same MAC {mac}",
                        "rename one group",
                    )
                )
            macs[mac] = node
    if problems:
        raise ConfigError(problems)
    clusters = fleet.clusters()
    nodes = {}
    for group in fleet.groups.values():
        members = sorted(n for g in clusters[group.cluster] for n in g.node_names)
        peers = tuple(ips[m] for m in members) if group.topology is Topology.CLUSTER else ()
        for node in group.node_names:
            nodes[node] = Node(
                node,
                group,
                placement.hosts[node],
                ips[node],
                node_mac(fleet, node),
                node_uuid(fleet, node),
                peers,
            )
    return FleetPlan(fleet, placement, nodes)
