"""Where every VM goes: capacity honoured, every cluster spread so that losing any one
hypervisor leaves it a quorum, and stable (a VM that fits where it is stays there).

Greedy and deterministic: nodes already placed (the placement file apply writes) keep their
host when it still exists and the rules still hold; the others go, cluster groups first and
bigger nodes first, to the host holding the fewest of their group, then of their cluster, then
the least used. Greedy packing can fail where a cleverer one would fit; the failure then names
the group and the shortage, and the fleet file can add capacity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from imagefactory.errors import FactoryError
from imagefactory.fleet.model import Capacity, Fleet, Group, Hypervisor, Topology


class PlacementError(FactoryError):
    """The hypervisors cannot hold the fleet under its rules; one line per shortage."""

    exit_code = 3

    def __init__(self, fleet: Fleet, problems: list[str]) -> None:
        self.problems = tuple(problems)
        head = f"{fleet.path}: cannot place fleet {fleet.name} ({len(problems)} problem(s)):"
        super().__init__("\n".join([head, *(f"  - {p}" for p in problems)]))


@dataclass
class HostUse:
    """What placement has handed out on one hypervisor so far."""

    host: Hypervisor
    vcpu: int = 0
    memory_gib: int = 0
    storage_gb: int = 0
    nodes: list[str] = field(default_factory=list)

    def fits(self, group: Group) -> str:
        """Empty when one more node of `group` fits, else what is short."""
        cap, short = self.host.usable, []
        for what, used, need, limit in (
            ("vCPU", self.vcpu, group.size.vcpu, cap.vcpu),
            ("GiB memory", self.memory_gib, group.size.memory_gib, cap.memory_gib),
            ("GB storage", self.storage_gb, group.storage_gb, cap.storage_gb),
        ):
            if used + need > limit:
                short.append(f"{limit - used} {what} free, {need} needed")
        return ", ".join(short)

    def add(self, node: str, group: Group) -> None:
        self.vcpu += group.size.vcpu
        self.memory_gib += group.size.memory_gib
        self.storage_gb += group.storage_gb
        self.nodes.append(node)

    @property
    def load(self) -> float:
        cap = self.host.usable
        return max(self.memory_gib / cap.memory_gib, self.vcpu / cap.vcpu)


@dataclass(frozen=True)
class Placement:
    hosts: Mapping[str, str]  # node -> hypervisor
    use: Mapping[str, HostUse]
    moved: tuple[str, ...] = ()  # nodes whose previous host could not be kept

    def nodes_on(self, host: str) -> list[str]:
        return sorted(n for n, h in self.hosts.items() if h == host)


def demand(fleet: Fleet) -> Capacity:
    groups = fleet.groups.values()
    return Capacity(
        vcpu=sum(g.count * g.size.vcpu for g in groups),
        memory_gib=sum(g.count * g.size.memory_gib for g in groups),
        storage_gb=sum(g.count * g.storage_gb for g in groups),
    )


def _precheck(fleet: Fleet) -> list[str]:
    """Shortages that no placement can overcome: too few hosts for a quorum, too little in
    total."""
    problems = []
    hosts = len(fleet.hypervisors)
    for cluster, groups in sorted(fleet.clusters().items()):
        nodes = sum(g.count for g in groups)
        need = groups[0].topology.hosts_needed(nodes)
        if groups[0].topology is Topology.CLUSTER and need > hosts:
            names = "+".join(g.name for g in groups)
            problems.append(
                f"{names}: {nodes} nodes need {need} hosts for quorum "
                f"(cluster {cluster}, at most "
                f"{groups[0].topology.max_per_host(nodes)} per host), {hosts} given"
            )
    want = demand(fleet)
    for what, need, offer in (
        ("vCPU", want.vcpu, sum(h.usable.vcpu for h in fleet.hypervisors.values())),
        (
            "GiB memory",
            want.memory_gib,
            sum(h.usable.memory_gib for h in fleet.hypervisors.values()),
        ),
        (
            "GB storage",
            want.storage_gb,
            sum(h.usable.storage_gb for h in fleet.hypervisors.values()),
        ),
    ):
        if need > offer:
            problems.append(
                f"fleet needs {need} {what}, the hypervisors offer {offer} (capacity x overcommit)"
            )
    return problems


def place(fleet: Fleet, previous: Mapping[str, str] | None = None) -> Placement:
    """Place every node; raise PlacementError naming every group that cannot be placed."""
    problems = _precheck(fleet)
    if problems:
        raise PlacementError(fleet, problems)
    use = {name: HostUse(hv) for name, hv in sorted(fleet.hypervisors.items())}
    clusters = fleet.clusters()
    per_cluster: dict[tuple[str, str], int] = {}
    per_group: dict[tuple[str, str], int] = {}
    hosts: dict[str, str] = {}

    def limit(group: Group) -> int:
        return group.topology.max_per_host(sum(g.count for g in clusters[group.cluster]))

    def assign(node: str, group: Group, host: str) -> None:
        use[host].add(node, group)
        per_cluster[group.cluster, host] = per_cluster.get((group.cluster, host), 0) + 1
        per_group[group.name, host] = per_group.get((group.name, host), 0) + 1
        hosts[node] = host

    moved = []
    for node, host in sorted((previous or {}).items()):
        try:
            group = fleet.group_of(node)
        except KeyError:
            continue  # no longer in the fleet
        if (
            host in use
            and not use[host].fits(group)
            and per_cluster.get((group.cluster, host), 0) < limit(group)
        ):
            assign(node, group, host)
        else:
            moved.append(node)
    order = sorted(
        fleet.groups.values(),
        key=lambda g: (
            g.topology is not Topology.CLUSTER,
            -g.size.memory_gib,
            -g.storage_gb,
            -g.count,
            g.name,
        ),
    )
    for group in order:
        for node in group.node_names:
            if node in hosts:
                continue
            candidates = [
                u
                for u in use.values()
                if not u.fits(group)
                and per_cluster.get((group.cluster, u.host.name), 0) < limit(group)
            ]
            if not candidates:
                why = "; ".join(
                    f"{u.host.name}: {u.fits(group) or 'cluster limit reached'}"
                    for u in use.values()
                )
                problems.append(
                    f"{group.name}: node {node} ({group.size.vcpu} vCPU, "
                    f"{group.size.memory_gib} GiB, {group.storage_gb} GB) fits no "
                    f"hypervisor ({why})"
                )
                continue
            best = min(
                candidates,
                key=lambda u: (
                    per_group.get((group.name, u.host.name), 0),
                    per_cluster.get((group.cluster, u.host.name), 0),
                    u.load,
                    u.host.name,
                ),
            )
            assign(node, group, best.host.name)
    if problems:
        raise PlacementError(fleet, problems)
    return Placement(hosts, use, tuple(n for n in moved if n in hosts))
