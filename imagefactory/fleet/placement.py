"""Where every VM goes: capacity honoured, every cluster spread so that losing any one
hypervisor leaves it a quorum, and stable (a VM that fits where it is stays there).

Greedy and deterministic: nodes already placed (the placement file apply writes) keep their
host when it still exists and the rules still hold; the others go, cluster groups first and
bigger nodes first, to the host holding the fewest of their group, then of their cluster, then
the least used. Greedy packing can fail where a cleverer one would fit; the failure then names
the group and the shortage, and the fleet file can add capacity.
"""

from __future__ import annotations

import heapq
from collections.abc import Container, Mapping
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
        return self.short_of(group.need)

    def short_of(self, need: Capacity) -> str:
        """Empty when a node needing `need` fits, else what is short."""
        cap, short = self.host.usable, []
        for what, used, want, limit in (
            ("vCPU", self.vcpu, need.vcpu, cap.vcpu),
            ("GiB memory", self.memory_gib, need.memory_gib, cap.memory_gib),
            ("GB storage", self.storage_gb, need.storage_gb, cap.storage_gb),
        ):
            if used + want > limit:
                short.append(f"{limit - used} {what} free, {want} needed")
        return ", ".join(short)

    def add(self, node: str, group: Group) -> None:
        self.vcpu += group.size.vcpu
        self.memory_gib += group.size.memory_gib
        self.storage_gb += group.storage_gb
        self.nodes.append(node)

    def remove(self, node: str, group: Group) -> None:
        self.vcpu -= group.size.vcpu
        self.memory_gib -= group.size.memory_gib
        self.storage_gb -= group.storage_gb
        self.nodes.remove(node)

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
        return sorted(self.use[host].nodes)


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


_SHOWN = 12  # hosts named in a "fits no hypervisor" line; a large fleet's would be pages long


class _LoadHeap:
    """Hosts by (load, name), least loaded first; a host's entry is replaced when its load
    changes (the old one is skipped when met), and a host that can no longer hold even the
    smallest node of the fleet leaves for good."""

    def __init__(self, use: Mapping[str, HostUse], smallest: Capacity) -> None:
        self.use, self.smallest = use, smallest
        self.current: dict[str, float] = {}
        self.heap: list[tuple[float, str]] = []
        for u in use.values():
            self.update(u)

    def update(self, u: HostUse) -> None:
        self.current[u.host.name] = u.load
        heapq.heappush(self.heap, (u.load, u.host.name))

    def least_loaded(self, need: Capacity, away_from: Container[str]) -> HostUse | None:
        """The least loaded host that `need` fits on and that is not in `away_from`."""
        skipped: list[tuple[float, str]] = []
        found = None
        while self.heap:
            entry = heapq.heappop(self.heap)
            load, name = entry
            if self.current.get(name) != load:
                continue  # stale: the host's load changed since this entry
            u = self.use[name]
            if u.short_of(self.smallest):
                del self.current[name]  # full for every group of the fleet
                continue
            skipped.append(entry)
            if u.host.name not in away_from and not u.short_of(need):
                found = u
                break
        for entry in skipped:
            heapq.heappush(self.heap, entry)
        return found


def place(fleet: Fleet, previous: Mapping[str, str] | None = None) -> Placement:
    """Place every node; raise PlacementError naming every group that cannot be placed.

    Near-linear in the fleet: a host holding no member of a node's cluster always beats one
    that does (the spread key starts with those counts), so the choice is the least loaded
    such host, taken from a heap, or else the best of the few hosts the cluster is already
    on. The result is the one a scan of every host would give."""
    problems = _precheck(fleet)
    if problems:
        raise PlacementError(fleet, problems)
    use = {name: HostUse(hv) for name, hv in sorted(fleet.hypervisors.items())}
    sizes = {c: sum(g.count for g in gs) for c, gs in fleet.clusters().items()}
    per_cluster: dict[str, dict[str, int]] = {c: {} for c in sizes}  # cluster -> host -> nodes
    per_group: dict[tuple[str, str], int] = {}
    hosts: dict[str, str] = {}
    needs = [g.need for g in fleet.groups.values()]
    smallest = Capacity(
        min(n.vcpu for n in needs),
        min(n.memory_gib for n in needs),
        min(n.storage_gb for n in needs),
    )
    free = _LoadHeap(use, smallest)

    def limit(group: Group) -> int:
        return group.topology.max_per_host(sizes[group.cluster])

    def assign(node: str, group: Group, host: str) -> None:
        use[host].add(node, group)
        on = per_cluster[group.cluster]
        on[host] = on.get(host, 0) + 1
        per_group[group.name, host] = per_group.get((group.name, host), 0) + 1
        hosts[node] = host
        free.update(use[host])

    moved = []
    groups_of = fleet.node_groups()
    for node, host in sorted((previous or {}).items()):
        group = groups_of.get(node)
        if group is None:
            continue  # no longer in the fleet
        if (
            host in use
            and not use[host].fits(group)
            and per_cluster[group.cluster].get(host, 0) < limit(group)
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
            on = per_cluster[group.cluster]
            best = free.least_loaded(group.need, on)
            if best is None:  # every fitting host already holds a member of the cluster
                candidates = [
                    use[h] for h, n in on.items() if n < limit(group) and not use[h].fits(group)
                ]
                best = min(
                    candidates,
                    key=lambda u: (
                        per_group.get((group.name, u.host.name), 0),
                        on[u.host.name],
                        u.load,
                        u.host.name,
                    ),
                    default=None,
                )
            if best is None:
                problems.append(_fits_nowhere(group, node, use, on, limit(group)))
                continue
            assign(node, group, best.host.name)
    if problems:
        raise PlacementError(fleet, problems)
    return Placement(hosts, use, tuple(n for n in moved if n in hosts))


def _fits_nowhere(
    group: Group, node: str, use: Mapping[str, HostUse], on: Mapping[str, int], limit: int
) -> str:
    shown = list(use.values())[:_SHOWN]
    why = "; ".join(f"{u.host.name}: {u.fits(group) or 'cluster limit reached'}" for u in shown)
    more = f"; and {len(use) - len(shown)} more" if len(use) > len(shown) else ""
    return (
        f"{group.name}: node {node} ({group.size.vcpu} vCPU, "
        f"{group.size.memory_gib} GiB, {group.storage_gb} GB) fits no hypervisor ({why}{more})"
    )
