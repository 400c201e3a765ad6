"""Per-VM records: name, host, stable MAC, UUID and IP derived from the name, cluster peers.

The MAC and UUID come from a hash of the fleet and node names; when two nodes' hashes give the
same value (three bytes of MAC collide from a few thousand VMs), the node that is new, or the
later by name, takes the next candidate (the hash with a counter). Each node's MAC, UUID and
IP are recorded in the placement file and kept from then on, so a node's identity never
changes once given. The IP starts from a hash of the name and probes upward past addresses
already taken; a node added later never takes an address another node already has.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagefactory.errors import ConfigError, Problem
from imagefactory.fleet.model import Fleet, Group, Topology
from imagefactory.fleet.placement import Placement, place
from imagefactory.util.fsutil import write_json_atomic

# App-Core refuses an SMBIOS value longer than this (appcore/src/appcore/discovery.py, VALUE).
SMBIOS_VALUE_MAX = 253

STATE_VERSION = 2  # 2 records mac and uuid; a version 1 file (host and ip) is still read
MAC = re.compile(r"^52:54:00(:[0-9a-f]{2}){3}$")


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


def _seed(fleet: Fleet, node: str, attempt: int = 0) -> str:
    # attempt 0 is the value every node had before collisions were resolved
    return f"imagefactory-fleet:{fleet.name}:{node}" + (f":{attempt}" if attempt else "")


def _digest(fleet: Fleet, node: str, attempt: int = 0) -> bytes:
    return hashlib.sha256(_seed(fleet, node, attempt).encode()).digest()


def node_mac(fleet: Fleet, node: str, attempt: int = 0) -> str:
    """52:54:00 (QEMU's locally administered prefix) and three bytes of the name's hash."""
    return "52:54:00:" + ":".join(f"{b:02x}" for b in _digest(fleet, node, attempt)[:3])


def node_uuid(fleet: Fleet, node: str, attempt: int = 0) -> str:
    # Stable: libvirt refuses to redefine a name under another UUID.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, _seed(fleet, node, attempt)))


Identity = tuple[str, str]  # (mac, uuid)


def assign_identities(
    fleet: Fleet, previous: Mapping[str, Mapping[str, str]]
) -> dict[str, Identity]:
    """Each node's MAC and UUID: as recorded, else the first candidate no other node has.
    Nodes recorded before identities were (version 1 files) have the first candidate and come
    before new nodes, so an existing VM keeps its MAC."""
    names = sorted(fleet.node_groups())
    file = str(fleet.placement_file)
    out: dict[str, dict[str, str]] = {n: {} for n in names}
    taken: dict[str, dict[str, str]] = {"mac": {}, "uuid": {}}  # value -> node
    problems = []
    for node in names:
        for kind in ("mac", "uuid"):
            given = previous.get(node, {}).get(kind)
            if given is None:
                continue
            if given in taken[kind]:
                problems.append(
                    Problem(
                        file,
                        f".nodes.{node}.{kind}",
                        f"{given} is recorded for {taken[kind][given]} too",
                        "restore the placement file from backup",
                    )
                )
            out[node][kind] = given
            taken[kind][given] = node
    if problems:
        raise ConfigError(problems)
    make: dict[str, Callable[[Fleet, str, int], str]] = {"mac": node_mac, "uuid": node_uuid}
    for node in sorted(names, key=lambda n: (n not in previous, n)):
        for kind, derive in make.items():
            if kind in out[node]:
                continue
            attempt = 0
            while (value := derive(fleet, node, attempt)) in taken[kind]:
                attempt += 1
            out[node][kind] = value
            taken[kind][value] = node
    return {n: (ids["mac"], ids["uuid"]) for n, ids in out.items()}


def assign_addresses(fleet: Fleet, previous: Mapping[str, str]) -> dict[str, ipaddress.IPv4Address]:
    net = fleet.network
    first = int(net.subnet.network_address) + net.first_host
    span = net.subnet.num_addresses - 1 - net.first_host  # the broadcast address stays free
    reserved = {net.gateway, *net.dns}
    names = list(fleet.node_groups())
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
    """node -> {host, ip, mac, uuid} as the last apply left it (mac and uuid from version 2
    on); empty before the first apply."""
    path = fleet.placement_file
    if path is None or not path.exists():
        return {}
    try:
        doc: Any = json.loads(path.read_text())
        nodes = doc["nodes"]
        if doc.get("fleet") != fleet.name or not isinstance(nodes, dict):
            raise ValueError("not this fleet's placement")
        out = {}
        for name, v in nodes.items():
            out[str(name)] = {"host": str(v["host"]), "ip": str(v["ip"])}
            out[str(name)].update(_identity(str(name), v))
        return out
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


def _identity(node: str, record: Mapping[str, Any]) -> dict[str, str]:
    """A recorded node's mac and uuid (a version 1 file has neither), checked for form
    (ValueError, reported by read_state)."""
    out = {k: str(record[k]) for k in ("mac", "uuid") if k in record}
    if "mac" in out and not MAC.match(out["mac"]):
        raise ValueError(f"{node}: mac {out['mac']!r} is not 52:54:00:xx:xx:xx")
    if "uuid" in out:
        out["uuid"] = str(uuid.UUID(out["uuid"]))
    return out


def state_document(plan: FleetPlan) -> dict[str, Any]:
    """What the placement file records: per node its host, address and identity."""
    nodes = {
        n.name: {
            "host": n.host,
            "ip": str(n.ip),
            "group": n.group.name,
            "mac": n.mac,
            "uuid": n.uuid,
        }
        for n in plan.nodes.values()
    }
    return {
        "version": STATE_VERSION,
        "fleet": plan.fleet.name,
        "nodes": dict(sorted(nodes.items())),
    }


def write_state(plan: FleetPlan, path: Path | None = None) -> bool:
    """Record the plan in the placement file (atomically); False when it already says so."""
    path = path or plan.fleet.placement_file
    if path is None:
        return False
    doc = state_document(plan)
    try:
        if json.loads(path.read_text()) == doc:
            return False
    except (OSError, ValueError):
        pass  # absent or unreadable: written afresh
    write_json_atomic(path, doc)
    return True


def plan_fleet(fleet: Fleet, fresh: bool = False) -> FleetPlan:
    """Placement and per-node records; keeps the previous hosts and addresses unless fresh."""
    state = {} if fresh else read_state(fleet)
    placement = place(fleet, {n: s["host"] for n, s in state.items()})
    ips = assign_addresses(fleet, {n: s["ip"] for n, s in state.items()})
    ids = assign_identities(fleet, state)
    clusters = fleet.clusters()
    nodes = {}
    too_long = []
    for group in fleet.groups.values():
        members = sorted(n for g in clusters[group.cluster] for n in g.node_names)
        peers = tuple(ips[m] for m in members) if group.topology is Topology.CLUSTER else ()
        listed = ",".join(str(p) for p in peers)
        if len(listed) > SMBIOS_VALUE_MAX:
            too_long.append(
                Problem(
                    str(fleet.path),
                    f".groups.{group.name}",
                    f"cluster {group.cluster}: the {len(peers)} members' addresses make an "
                    f"appcore:peers value of {len(listed)} characters; App-Core reads at most "
                    f"{SMBIOS_VALUE_MAX}",
                    "split the cluster (about 15 members fit)",
                )
            )
        for node in group.node_names:
            nodes[node] = Node(
                node,
                group,
                placement.hosts[node],
                ips[node],
                *ids[node],
                peers,
            )
    if too_long:
        raise ConfigError(sorted(set(too_long), key=str))
    return FleetPlan(fleet, placement, nodes)


def record_host(fleet: Fleet, node: str, host: str) -> None:
    """The placement file says `node` is on `host` now (a finished move), atomically; the
    rest of the file as it was."""
    path = fleet.placement_file
    if path is None:
        return
    doc = json.loads(path.read_text())
    doc["nodes"][node]["host"] = host
    write_json_atomic(path, doc)
