"""Hosts the placement file keeps empty, and moves that would fill them (`fleet.plan
--rebalance`): one VM at a time, every cluster keeping its quorum throughout; `fleet.apply
--rebalance` makes them (fleet/move.py).

Placement keeps every recorded VM where it is (a VM never leaves its data disk by itself), so
a host added to a running fleet stays empty. The proposal moves one VM at a time from the
most loaded host to a less loaded one while that lowers the higher of the two loads; a move is
proposed only if, after it, the receiving host still fits the VM and holds no more of its
cluster than quorum allows. Each step therefore leaves a placement in which losing any one
host keeps every cluster's majority, and during a step only the moving VM is down (its
cluster has at least 3 members, so the others are a majority).
"""

from __future__ import annotations

from dataclasses import dataclass

from imagefactory.fleet.model import Topology
from imagefactory.fleet.nodes import FleetPlan
from imagefactory.fleet.placement import HostUse


@dataclass(frozen=True)
class Move:
    node: str
    source: str
    target: str
    cluster: str
    members: int  # of its cluster (1 for an independent node)


def empty_hosts(plan: FleetPlan) -> list[str]:
    """Hosts the plan leaves without a VM although the fleet has VMs."""
    if not plan.nodes:
        return []
    return [h for h in sorted(plan.fleet.hypervisors) if not plan.placement.use[h].nodes]


def propose_moves(plan: FleetPlan) -> list[Move]:
    """One-VM-at-a-time moves that even out the hosts' loads (see the module's docstring)."""
    fleet = plan.fleet
    use = {name: HostUse(hv) for name, hv in sorted(fleet.hypervisors.items())}
    on: dict[str, dict[str, int]] = {}  # cluster -> host -> members there
    for node in sorted(plan.nodes.values(), key=lambda n: n.name):
        use[node.host].add(node.name, node.group)
        hosts = on.setdefault(node.group.cluster, {})
        hosts[node.host] = hosts.get(node.host, 0) + 1
    sizes = {c: sum(g.count for g in gs) for c, gs in fleet.clusters().items()}
    moves: list[Move] = []
    for _ in range(len(plan.nodes)):
        donor = max(use.values(), key=lambda u: (u.load, u.host.name))
        receivers = sorted(use.values(), key=lambda u: (u.load, u.host.name))
        move = _best_move(plan, donor, receivers, on, sizes)
        if move is None:
            break
        group = fleet.group_of(move.node)
        use[move.source].remove(move.node, group)
        use[move.target].add(move.node, group)
        hosts = on[move.cluster]
        hosts[move.source] -= 1
        hosts[move.target] = hosts.get(move.target, 0) + 1
        moves.append(move)
    return moves


def _best_move(
    plan: FleetPlan,
    donor: HostUse,
    receivers: list[HostUse],
    on: dict[str, dict[str, int]],
    sizes: dict[str, int],
) -> Move | None:
    """The first (least loaded) receiver that takes one of the donor's VMs, biggest first,
    and stays below the donor's load with it; None when no move lowers the higher load."""
    fleet = plan.fleet
    nodes = sorted(
        donor.nodes,
        key=lambda n: (-fleet.group_of(n).size.memory_gib, -fleet.group_of(n).storage_gb, n),
    )
    for recv in receivers:
        if recv.load >= donor.load or recv is donor:
            break
        for name in nodes:
            group = fleet.group_of(name)
            limit = group.topology.max_per_host(sizes[group.cluster])
            if recv.fits(group) or on[group.cluster].get(recv.host.name, 0) >= limit:
                continue
            cap = recv.host.usable
            after = max(
                (recv.memory_gib + group.size.memory_gib) / cap.memory_gib,
                (recv.vcpu + group.size.vcpu) / cap.vcpu,
            )
            if after >= donor.load:
                continue
            members = sizes[group.cluster] if group.topology is Topology.CLUSTER else 1
            return Move(name, donor.host.name, recv.host.name, group.cluster, members)
    return None


def render_rebalance(plan: FleetPlan) -> str:
    """The proposal as text: one numbered line per move, in the order they would be made."""
    moves = propose_moves(plan)
    if not moves:
        return "rebalance: no move would even out the hosts' loads"
    lines = [
        f"rebalance: {len(moves)} move(s), one VM at a time, each done (its VM back and "
        "healthy) before the next; after every step losing any one host leaves every "
        "cluster its quorum:"
    ]
    for i, m in enumerate(moves, 1):
        down = (
            f"cluster {m.cluster}: {m.members - 1} of {m.members} up during the move"
            if m.members > 1
            else "independent"
        )
        lines.append(f"  {i}. {m.node}: {m.source} -> {m.target} ({down})")
    lines.append(
        "(`fleet.apply --rebalance` makes them, its data disk copied with each VM; "
        "a proposal is computed again from the placement file each time)"
    )
    return "\n".join(lines)
