"""How a rollout runs its clusters at once: one lane per cluster (its own batches one after
another: a cluster member at a time, `rollout_batch` nodes of an independent group), every
lane at the same time, each batch let go only within the fleet-wide limits.

The limits are taken for a batch before its first node is touched and given back when its
last node passed its gate or was put back: `rollout.max_unavailable` VMs in the whole fleet,
a hypervisor's `max_parallel` VMs on it (template copy, disk and CPU are shared). One thread
(the caller's) decides which batch goes next: the lane with the most rounds left first (the
longest cluster sets the rollout's time), any of its waiting nodes whose host has room.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TypeVar

from imagefactory.fleet.apply import select
from imagefactory.fleet.nodes import FleetPlan, Node
from imagefactory.fleet.rollout_progress import current_cluster, in_cluster

T = TypeVar("T")
R = TypeVar("R")
Move = tuple[Node, str]  # a node and the version it runs before the move


@dataclass
class Limits:
    """What may go down now across lanes; only the scheduling thread changes it."""

    max_unavailable: int
    per_host: Mapping[str, int]
    down: int = 0
    on_host: Counter[str] = field(default_factory=Counter)

    def fit(self, moves: Sequence[Move], size: int) -> list[Move]:
        """Up to `size` of `moves`, in order, skipping those whose host is full."""
        picked: list[Move] = []
        hosts: Counter[str] = Counter()
        for move in moves:
            host = move[0].host
            if len(picked) == size or self.down + len(picked) >= self.max_unavailable:
                break
            if self.on_host[host] + hosts[host] < self.per_host[host]:
                picked.append(move)
                hosts[host] += 1
        return picked

    def take(self, moves: Sequence[Move], sign: int = 1) -> None:
        self.down += sign * len(moves)
        for node, _ in moves:
            self.on_host[node.host] += sign


@dataclass
class Lane:
    cluster: str
    batch: int  # nodes at once: 1 for a cluster, rollout_batch for independent nodes
    waiting: list[Move]

    @property
    def rounds(self) -> int:
        return -(-len(self.waiting) // self.batch)


# One batch of a lane: True to go on with the lane, False when its cluster stopped.
Step = Callable[[str, list[Move]], bool]


def run_lanes(lanes: list[Lane], limits: Limits, step: Step) -> None:
    """Every lane's batches through `step`, lanes in parallel; an exception that is not a
    cluster's own stop (KeyboardInterrupt from a gate, a bug) lets no further node go down,
    waits for the batches under way and is raised."""
    workers = max(1, min(len(lanes), limits.max_unavailable, sum(limits.per_host.values())))
    busy: dict[Future[bool], tuple[Lane, list[Move]]] = {}
    waiting = {lane.cluster: lane for lane in lanes if lane.waiting}
    with ThreadPoolExecutor(workers, thread_name_prefix="rollout") as pool:
        try:
            while waiting or busy:
                running = {lane.cluster for lane, _ in busy.values()}
                for lane in sorted(waiting.values(), key=lambda ln: (-ln.rounds, ln.cluster)):
                    moves = [] if lane.cluster in running else limits.fit(lane.waiting, lane.batch)
                    if not moves:
                        continue
                    limits.take(moves)
                    lane.waiting = [m for m in lane.waiting if m not in moves]
                    if not lane.waiting:
                        del waiting[lane.cluster]
                    busy[pool.submit(step, lane.cluster, moves)] = (lane, moves)
                if not busy:  # cannot be: an idle fleet has room for any one node
                    raise RuntimeError(f"rollout: no batch fits the limits {limits}")
                done, _ = wait(busy, return_when=FIRST_COMPLETED)
                for future in done:
                    lane, moves = busy.pop(future)
                    limits.take(moves, -1)
                    if not future.result():
                        waiting.pop(lane.cluster, None)
        except BaseException:
            waiting.clear()
            for future in busy:  # their clusters' own failures are recorded by `step`
                future.exception()
            raise


def each(work: Callable[[T], R], items: Sequence[T]) -> list[R | BaseException]:
    """`work` on every item at once (one thread each, in the caller's cluster), waiting for
    all; an item's exception is its result, so one failure does not hide the others."""
    if len(items) == 1:
        try:
            return [work(items[0])]
        except BaseException as exc:  # handed back, as in threads
            return [exc]
    results: list[R | BaseException] = [RuntimeError("not run")] * len(items)
    cluster = current_cluster()

    def run(i: int) -> None:
        with in_cluster(cluster):
            try:
                results[i] = work(items[i])
            except BaseException as exc:  # handed back to the caller
                results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def describe_plan(
    plan: FleetPlan, versions: dict[str, str], current: dict[str, str], only: str | None = None
) -> str:
    """--dry-run: the limits, and per cluster the nodes in the order they would be replaced."""
    fleet = plan.fleet
    per_host = sorted({hv.max_parallel for hv in fleet.hypervisors.values()})
    lines = [
        f"all clusters at once: at most {fleet.rollout.max_unavailable} VM(s) down in the "
        f"fleet, {'/'.join(map(str, per_host))} being replaced per hypervisor"
    ]
    nodes = select(plan, None, only)
    for cluster in sorted({n.group.cluster for n in nodes}):
        members = sorted((n for n in nodes if n.group.cluster == cluster), key=lambda n: n.name)
        moves = [
            f"{n.name}@{n.host} {current.get(n.name, '?')} -> {versions[n.group.family]}"
            for n in members
            if current.get(n.name) != versions[n.group.family]
        ]
        batch = members[0].group.batch
        lines.append(
            f"cluster {cluster} ({batch} at a time): "
            + ("; ".join(moves) if moves else "nothing to do")
        )
    return "\n".join(lines)
