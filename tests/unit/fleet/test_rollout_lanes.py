"""The parallel rollout's scheduling and output, without hypervisors: which nodes the limits
let go down, lanes that stop alone, lines named by cluster, the live summary."""

from __future__ import annotations

import io
import threading
from pathlib import Path

from imagefactory.fleet.config import load_fleet
from imagefactory.fleet.nodes import FleetPlan, plan_fleet
from imagefactory.fleet.rollout_lanes import Lane, Limits, Move, run_lanes
from imagefactory.fleet.rollout_progress import Progress, in_cluster
from tests.fleetkit import group, hypervisor, write_fleet


def two_host_plan(tmp_path: Path) -> FleetPlan:
    hosts = {h: hypervisor(f"test:///{h}", "/srv/fleet") for h in ("hv-a", "hv-b")}
    groups = {"wrk-app": group("APP", "workers", 6, "independent", "wrk-app", rollout_batch=3)}
    return plan_fleet(load_fleet(write_fleet(tmp_path, hosts, groups)), fresh=True)


def moves(plan: FleetPlan) -> list[Move]:
    return [(plan.nodes[n], "v1") for n in sorted(plan.nodes)]


def test_fit_skips_a_full_host_and_stops_at_the_fleet_limit(tmp_path: Path) -> None:
    """One slot per host: one node of each host; the fleet limit cuts a batch short."""
    plan = two_host_plan(tmp_path)
    todo = moves(plan)
    picked = Limits(10, {"hv-a": 1, "hv-b": 1}).fit(todo, 3)
    assert sorted(node.host for node, _ in picked) == ["hv-a", "hv-b"]
    limits = Limits(2, {"hv-a": 4, "hv-b": 4})
    limits.take(todo[:1])
    assert len(limits.fit(todo[1:], 3)) == 1
    limits.take(todo[:1], -1)
    assert (limits.down, sum(limits.on_host.values())) == (0, 0)


def test_a_stopped_lane_runs_no_further_batch(tmp_path: Path) -> None:
    """Lane a stops after its first batch; lane b runs all of its batches."""
    plan = two_host_plan(tmp_path)
    todo = moves(plan)
    ran: list[str] = []
    lock = threading.Lock()

    def step(cluster: str, batch: list[Move]) -> bool:
        with lock:
            ran.extend(f"{cluster}:{node.name}" for node, _ in batch)
        return cluster != "a"

    lanes = [Lane("a", 1, todo[:3]), Lane("b", 1, todo[3:])]
    run_lanes(lanes, Limits(10, {"hv-a": 2, "hv-b": 2}), step)
    assert len([r for r in ran if r.startswith("a:")]) == 1
    assert sorted(r for r in ran if r.startswith("b:")) == [
        "b:wrk-app-04",
        "b:wrk-app-05",
        "b:wrk-app-06",
    ]


def test_a_log_gets_plain_lines_named_by_cluster() -> None:
    """Not a terminal: one line per step with its cluster, no summary, no escape codes."""
    out = io.StringIO()
    progress = Progress(out, live=False)
    progress.expect("pxc-main", 8)
    with in_cluster("pxc-main"):
        progress.say("  pers-db-master-03: gate ok (41 s), now on v2")
    progress.moved("pxc-main", started=1)
    progress.say("rollout: 8 VM(s) considered")
    assert out.getvalue() == (
        "[pxc-main] pers-db-master-03: gate ok (41 s), now on v2\nrollout: 8 VM(s) considered\n"
    )


def test_a_terminal_gets_a_summary_under_the_lines() -> None:
    """Live: the summary (done / in progress / left, per cluster) is redrawn after each
    line and cleared at the end."""
    out = io.StringIO()
    progress = Progress(out, live=True)
    progress.expect("ms-main", 3)
    progress.expect("wrk-app", 4)
    progress.moved("ms-main", started=1)
    progress.moved("ms-main", finished=1)
    progress.moved("wrk-app", started=2)
    with in_cluster("wrk-app"):
        progress.say("wrk-app-01: shutting down")
    progress.close()
    last = out.getvalue().split("\r\x1b[K")
    assert last[-2] == (
        "[wrk-app] wrk-app-01: shutting down\n"
        "1 done, 2 in progress, 4 left | ms-main 1+0/3 wrk-app 0+2/4"
    )
    assert last[-1] == ""
