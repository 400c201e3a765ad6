"""Rollouts on simulated hypervisors: a health gate stand-in that records each call and checks
the cluster rule (no other member down while a node is checked), and what it reads back."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from imagefactory.fleet.apply import live_fleet_metadata
from imagefactory.fleet.config import load_fleet
from imagefactory.fleet.health import Gate, Health
from imagefactory.fleet.hypervisor import Connections, is_running, lookup
from imagefactory.fleet.nodes import Node, plan_fleet

SMALL = {"vcpu": 2, "memory_gib": 2, "os_disk_gb": 1}


class Recorder:
    """Health gate stand-in: records calls, asserts the cluster rule, fails or dies on cue."""

    def __init__(
        self,
        path: Path,
        conns: Connections,
        fail: set[str] = frozenset(),
        kill: set[str] = frozenset(),
    ) -> None:
        self.plan = plan_fleet(load_fleet(path))
        self.conns, self.fail, self.kill = conns, set(fail), set(kill)
        self.calls: list[tuple[str, dict[str, str]]] = []

    def version_of(self, name: str) -> str:
        node = self.plan.nodes[name]
        dom = lookup(self.conns.get(self.plan.fleet.hypervisors[node.host]), name)
        return live_fleet_metadata(dom)["version"]

    def __call__(self, node: Node) -> Health:
        members = [n for g in self.plan.fleet.clusters()[node.group.cluster] for n in g.node_names]
        for other in members:
            n = self.plan.nodes[other]
            dom = lookup(self.conns.get(self.plan.fleet.hypervisors[n.host]), other)
            assert is_running(dom), f"{other} is down while {node.name} is checked"
        self.calls.append((node.name, {m: self.version_of(m) for m in members}))
        if node.name in self.kill:
            self.kill.discard(node.name)
            raise KeyboardInterrupt  # the operator's Ctrl-C, or a crash, mid-gate
        if node.name in self.fail:
            self.fail.discard(node.name)  # fails once: healthy again on the old version
            return Health(False, "role service failed to start", final=True)
        return Health(True, "configured")


def versions(rec: Recorder) -> dict[str, str]:
    return {n: rec.version_of(n) for n in sorted(rec.plan.nodes)}


class Overlap:
    """A gate that takes `seconds` (real threads, a real sleep) and records when each node was
    down: from its pre-stop step to the end of its gate; `rec` checks and scripts each call."""

    def __init__(self, rec: Recorder, seconds: float) -> None:
        self.rec, self.seconds = rec, seconds
        self.lock = threading.Lock()
        self.since: dict[str, float] = {}
        self.spans: list[tuple[str, float, float]] = []

    def prestop(self, node: Node) -> None:
        with self.lock:
            self.since[node.name] = time.monotonic()

    def wait(self, node: Node) -> Health:
        time.sleep(self.seconds)
        try:
            return self.rec(node)
        finally:
            with self.lock:
                if node.name in self.since:
                    self.spans.append((node.name, self.since.pop(node.name), time.monotonic()))

    def gate(self) -> Gate:
        return Gate(self.wait, None, self.prestop)

    def peak(self, key: Callable[[Node], str]) -> dict[str, int]:
        """Most nodes down at one moment, per key (cluster, host, or one key for the fleet)."""
        events = sorted(
            (t, step, key(self.rec.plan.nodes[name]))
            for name, start, end in self.spans
            for t, step in ((start, 1), (end, -1))
        )  # at equal times an end (-1) sorts before a start
        now: Counter[str] = Counter()
        most: Counter[str] = Counter()
        for _t, step, k in events:
            now[k] += step
            most[k] = max(most[k], now[k])
        return dict(most)
