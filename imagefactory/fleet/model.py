"""The fleet's intent as frozen dataclasses: groups of role VMs, hypervisors, the network.

Everything here is data read from fleet.yaml (see fleet/config.py); placement, addresses and
libvirt XML are derived from it elsewhere. Closed choices are enums that carry their rule.
As for factory.yaml, each setting is declared twice, each time saying what the other cannot:
imagefactory/schemas/fleet.schema.json (what the file may contain) and the type and default
here; imagefactory.util.model.build joins them (a unit test keeps the two in step).
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagefactory.fleet.rotation import Rotation
from imagefactory.store.settings import StoreSettings

GB = 1000**3  # disks are sized in decimal GB, as the design document does (1 TB = 1000 GB)
GIB = 1024**3


class Topology(enum.Enum):
    """How a group's nodes relate: one quorum-based cluster, or nodes that stand alone."""

    CLUSTER = "cluster"
    INDEPENDENT = "independent"

    def max_per_host(self, nodes: int) -> int:
        """Most nodes of one cluster a single hypervisor may hold so that losing it leaves a
        majority (quorum) running; independent nodes have no such limit."""
        if self is Topology.INDEPENDENT:
            return nodes
        return nodes - quorum(nodes)

    def hosts_needed(self, nodes: int) -> int:
        per_host = self.max_per_host(nodes)
        return math.ceil(nodes / per_host) if per_host > 0 else nodes + 1


def quorum(nodes: int) -> int:
    """A strict majority of a cluster's nodes."""
    return nodes // 2 + 1


class RoleCatalogue(enum.Enum):
    """Which of App-Core's roles a fleet may use: the production catalogue (roles.json), or
    that plus the test roles the stand-in image carries (selftest-role.json: SELFTEST,
    STANDIN_GALERA), for test fleets only."""

    PRODUCTION = "production"
    TEST = "test"


class DomainType(enum.Enum):
    """libvirt domain type: KVM when the host really runs KVM guests, else QEMU's TCG."""

    AUTO = "auto"
    KVM = "kvm"
    QEMU = "qemu"


class StorageMode(enum.Enum):
    """How VM disks are made on a hypervisor: files written by apply itself (a local URI), or
    volumes of a libvirt storage pool made through the connection (any URI, remote too)."""

    AUTO = "auto"  # files for a local URI, pool for a remote one
    FILES = "files"
    POOL = "pool"


class NetworkKind(enum.Enum):
    """How a VM's NIC reaches the fleet network on one hypervisor."""

    BRIDGE = "bridge"  # a host bridge (production: the fleet VLAN)
    LIBVIRT_NETWORK = "libvirt_network"  # a libvirt-managed network
    USER = "user_ssh_port_base"  # QEMU user networking, SSH on 127.0.0.1 (tests and labs only)


@dataclass(frozen=True)
class Size:
    vcpu: int = 4
    memory_gib: int = 8
    os_disk_gb: int = 64


@dataclass(frozen=True)
class DataDisk:
    serial: str  # virtio serial, App-Core's catalogue disk id (DATA_DB, ...)
    size_gb: int
    assumption: str = ""  # why this size, when the design document gives none


@dataclass(frozen=True)
class RoundRobin:
    """A round-robin group's rotation (fleet.yaml `rotation:` and friends; docs/fleet.md)."""

    rotation: Rotation
    timezone: str = "UTC"
    backup: StoreSettings | None = None  # None: the fleet's `store:` (prefix backups/)
    backup_keep: int | None = None  # periods kept; None: two cycles


@dataclass(frozen=True)
class Group:
    name: str
    role: str  # App-Core catalogue role id
    family: str  # image family whose template the nodes run
    count: int
    topology: Topology
    cluster: str
    size: Size
    data_disk: DataDisk | None = None
    description: str = ""
    rollout_batch: int = 1  # nodes replaced at once in a rollout (clusters: always 1)
    round_robin: RoundRobin | None = None

    @property
    def batch(self) -> int:
        return 1 if self.topology is Topology.CLUSTER else self.rollout_batch

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(f"{self.name}-{i:02d}" for i in range(1, self.count + 1))

    @property
    def storage_gb(self) -> int:
        """Provisioned storage of one node: OS overlay (its virtual size) plus data disk."""
        return self.size.os_disk_gb + (self.data_disk.size_gb if self.data_disk else 0)

    @property
    def need(self) -> Capacity:
        """What one node takes from its hypervisor."""
        return Capacity(self.size.vcpu, self.size.memory_gib, self.storage_gb)


@dataclass(frozen=True)
class Capacity:
    vcpu: int
    memory_gib: int
    storage_gb: int


@dataclass(frozen=True)
class Overcommit:
    cpu: float = 1.0
    memory: float = 1.0  # never above 1 unless the fleet file says so
    storage: float = 1.0


@dataclass(frozen=True)
class NetworkAttachment:
    kind: NetworkKind
    value: str  # bridge name, libvirt network name, or the first forwarded SSH port

    @property
    def ssh_port_base(self) -> int:
        return int(self.value) if self.kind is NetworkKind.USER else 0

    @classmethod
    def parse(cls, value: Any) -> NetworkAttachment:
        """From the file's one-key mapping, e.g. {bridge: br-fleet}."""
        if isinstance(value, NetworkAttachment):
            return value
        ((kind, name),) = value.items()
        return cls(NetworkKind(kind), str(name))


@dataclass(frozen=True)
class Hypervisor:
    name: str
    uri: str
    storage_dir: Path
    capacity: Capacity
    network: NetworkAttachment = field(metadata={"parse": NetworkAttachment.parse})
    overcommit: Overcommit = Overcommit()
    domain_type: DomainType = DomainType.AUTO
    storage: StorageMode = StorageMode.AUTO
    max_parallel: int = 2  # VMs a rollout replaces on this host at once (disk, CPU shared)

    @property
    def usable(self) -> Capacity:
        """What placement may hand out: capacity times the allowed overcommit."""
        return Capacity(
            vcpu=int(self.capacity.vcpu * self.overcommit.cpu),
            memory_gib=int(self.capacity.memory_gib * self.overcommit.memory),
            storage_gb=int(self.capacity.storage_gb * self.overcommit.storage),
        )


def _addresses(value: Any) -> tuple[ipaddress.IPv4Address, ...]:
    return tuple(ipaddress.IPv4Address(a) for a in value)


@dataclass(frozen=True)
class Network:
    # the loader checks the addresses first (fleet/config.py): these conversions then succeed
    subnet: ipaddress.IPv4Network = field(metadata={"parse": ipaddress.IPv4Network})
    gateway: ipaddress.IPv4Address = field(metadata={"parse": ipaddress.IPv4Address})
    dns: tuple[ipaddress.IPv4Address, ...] = field(default=(), metadata={"parse": _addresses})
    first_host: int = 10  # addresses below subnet+first_host are left to routers and services


@dataclass(frozen=True)
class RolloutSettings:
    ssh_identity: Path | None = None  # the ops private key the health gate logs in with
    shutdown_timeout_s: int = 120  # ACPI shutdown, then a reported hard stop
    health_timeout_s: int = 600  # from start until `appcore status` says configured
    max_unavailable: int = 10  # VMs a rollout has down at once in the whole fleet
    state_dir: Path | None = None  # one small JSON file per hypervisor


@dataclass(frozen=True)
class Fleet:
    path: Path
    name: str
    network: Network
    hypervisors: Mapping[str, Hypervisor]
    groups: Mapping[str, Group]
    channel: str = "stable"
    store: StoreSettings | None = None
    placement_file: Path | None = None
    access_key_files: tuple[Path, ...] = ()  # ops' public keys, read at render/apply
    rollout: RolloutSettings = RolloutSettings()
    description: str = ""
    catalogue: RoleCatalogue = RoleCatalogue.PRODUCTION

    @property
    def node_count(self) -> int:
        return sum(g.count for g in self.groups.values())

    def group_of(self, node: str) -> Group:
        return self.node_groups()[node]

    def node_groups(self) -> Mapping[str, Group]:
        """Node name -> its group (computed once: a large fleet asks for every node)."""
        return self._node_groups

    @functools.cached_property
    def _node_groups(self) -> dict[str, Group]:
        return {n: g for g in self.groups.values() for n in g.node_names}

    def clusters(self) -> dict[str, tuple[Group, ...]]:
        """Cluster name -> its groups (several groups may form one cluster, e.g. PXC writers
        and read-only members of the same Galera cluster)."""
        return dict(self._clusters)

    @functools.cached_property
    def _clusters(self) -> dict[str, tuple[Group, ...]]:
        out: dict[str, list[Group]] = {}
        for group in self.groups.values():
            out.setdefault(group.cluster, []).append(group)
        return {name: tuple(groups) for name, groups in out.items()}
