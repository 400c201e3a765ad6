"""The rollout trusts the cluster, not libvirt: before a member goes down every other member
must be ready by its role's own check, the pre-stop step runs while all are up, and a node
that comes back is kept only if every other member is ready with it (simulated hypervisors;
the gate's answers are scripted, the SSH gate itself is covered by the e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from imagefactory.errors import FactoryError
from imagefactory.fleet import commands
from imagefactory.fleet.config import load_fleet
from imagefactory.fleet.health import Gate, Health
from imagefactory.fleet.hypervisor import FleetError, is_running, lookup
from imagefactory.fleet.nodes import Node
from imagefactory.fleet.rollout_state import RolloutState
from imagefactory.fleet.storage import layout_for
from tests.rolloutkit import Recorder, versions

pytestmark = pytest.mark.integration


def short_waits(path: Path) -> None:
    """The shortest health timeout (10 s): the scripted answers never change meanwhile."""
    doc = yaml.safe_load(path.read_text())
    doc.setdefault("rollout", {})["health_timeout_s"] = 10
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


class Looks:
    """One look at a member: not ready for the names in `down` (e.g. a joiner in SST)."""

    def __init__(self, down: set[str]) -> None:
        self.down = down
        self.asked: list[str] = []

    def __call__(self, node: Node) -> Health:
        self.asked.append(node.name)
        if node.name in self.down:
            return Health(False, "not synced: joining (receiving a state transfer)")
        return Health(True, "ready")


def test_a_member_that_is_not_ready_blocks_the_next_shutdown(fleet) -> None:
    """pers-ms-02 runs but is not in the cluster, within the whole health timeout (10 s
    here): nobody of ms-main goes down."""
    path, conns, v1, _ = fleet
    short_waits(path)
    rec = Recorder(path, conns)
    looks = Looks({"pers-ms-02"})
    before = versions(rec)
    with pytest.raises(FactoryError, match=r"pers-ms-02 is not ready \(not synced: joining"):
        commands.rollout(path, only="pers-ms", conns=conns, health=Gate(rec, looks))
    assert versions(rec) == before
    assert rec.calls == []  # no node was restarted, so no gate ran


def test_prestop_runs_on_a_running_node_with_every_member_ready(fleet) -> None:
    """The pre-stop step of each member, in order, each time with the whole cluster up."""
    path, conns, _, v2 = fleet
    rec = Recorder(path, conns)
    stopped: list[str] = []

    def prestop(node: Node) -> None:
        for name in sorted(rec.plan.nodes):
            if name.startswith("pers-ms"):
                member = rec.plan.nodes[name]
                dom = lookup(conns.get(rec.plan.fleet.hypervisors[member.host]), name)
                assert is_running(dom), f"{name} down at the pre-stop of {node.name}"
        stopped.append(node.name)

    commands.rollout(path, only="pers-ms", conns=conns, health=Gate(rec, Looks(set()), prestop))
    assert stopped == ["pers-ms-01", "pers-ms-02", "pers-ms-03"]
    assert {n: v for n, v in versions(rec).items() if n.startswith("pers-ms")} == {
        "pers-ms-01": v2["persistence"],
        "pers-ms-02": v2["persistence"],
        "pers-ms-03": v2["persistence"],
    }


def test_a_refused_prestop_stops_the_cluster_with_the_node_untouched(fleet) -> None:
    """A drain that did not finish: pers-ms-02 keeps running its version, never switched."""
    path, conns, v1, v2 = fleet
    rec = Recorder(path, conns)

    def prestop(node: Node) -> None:
        if node.name == "pers-ms-02":
            raise FleetError("pers-ms-02: appcore prestop failed (exit 1): drain not finished")

    with pytest.raises(FactoryError, match="ms-main.*drain not finished"):
        commands.rollout(path, only="pers-ms", conns=conns, health=Gate(rec, Looks(set()), prestop))
    now = {n: v for n, v in versions(rec).items() if n.startswith("pers-ms")}
    assert now == {
        "pers-ms-01": v2["persistence"],
        "pers-ms-02": v1["persistence"],
        "pers-ms-03": v1["persistence"],
    }
    dom = lookup(
        conns.get(rec.plan.fleet.hypervisors[rec.plan.nodes["pers-ms-02"].host]), "pers-ms-02"
    )
    assert is_running(dom)
    state = RolloutState(rec.plan.fleet)
    assert (state.get(rec.plan.nodes["pers-ms-02"]) or {}).get("phase") == "prepared"


def test_a_node_its_peers_do_not_see_is_rolled_back(fleet) -> None:
    """pers-ms-01 passes its own gate, but pers-ms-02 is not ready with it afterwards: the
    node goes back to the old version and the cluster's rollout stops."""
    path, conns, v1, _ = fleet
    short_waits(path)
    rec = Recorder(path, conns)
    looks = Looks(set())

    def wait(node: Node) -> Health:
        result = rec(node)
        looks.down = {"pers-ms-02"} if rec.version_of(node.name) != v1["persistence"] else set()
        return result

    with pytest.raises(FactoryError, match="pers-ms-01 failed the health gate"):
        commands.rollout(path, only="pers-ms", conns=conns, health=Gate(wait, looks))
    assert versions(rec)["pers-ms-01"] == v1["persistence"]
    assert versions(rec)["pers-ms-02"] == v1["persistence"]


@pytest.mark.parametrize("task", ["apply", "gc --apply", "destroy"])
def test_apply_gc_and_destroy_wait_for_no_rollout(fleet, task: str) -> None:
    """The rollout's lock: apply, gc --apply and destroy are refused while it is held."""
    path, conns, v1, _ = fleet
    rec = Recorder(path, conns)
    before = versions(rec)
    calls = {
        "apply": lambda: commands.apply(path, conns=conns),
        "gc --apply": lambda: commands.gc(path, apply=True, conns=conns),
        "destroy": lambda: commands.destroy(path, node="wrk-app-01", conns=conns),
    }
    refused = pytest.raises(FleetError, match="another rollout of this fleet is running")
    with RolloutState(load_fleet(path)).locked(), refused:
        calls[task]()
    assert versions(rec) == before


def test_resume_of_a_finished_switch_back_removes_the_booted_overlay(
    fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """Killed after the node was put back on its old overlay but before that was recorded:
    the resume removes the new overlay (it booted once) and gates the node; the next try
    starts the new version from a fresh overlay."""
    path, conns, v1, v2 = fleet
    rec = Recorder(path, conns, fail={"pers-ms-01"})
    with pytest.raises(FactoryError):
        commands.rollout(path, only="pers-ms", conns=conns, health=rec)
    node = rec.plan.nodes["pers-ms-01"]
    storage = layout_for(rec.plan.fleet.hypervisors[node.host])
    leftover = storage.overlay(node.name, v2["persistence"])
    leftover.write_bytes(b"an overlay that booted")  # as the kill left it
    RolloutState(rec.plan.fleet).set(node, "rolling-back", (v1["persistence"], v2["persistence"]))
    rec2 = Recorder(path, conns)
    capsys.readouterr()
    with pytest.raises(FleetError, match="pers-ms-01 was being rolled back"):
        commands.rollout(path, only="pers-ms", conns=conns, health=rec2)
    assert f"pers-ms-01: rolled back to {v1['persistence']} (healthy)" in capsys.readouterr().out
    assert [name for name, _ in rec2.calls] == ["pers-ms-01"]
    assert not leftover.exists() or leftover.read_bytes() != b"an overlay that booted"
    # The resume stopped that cluster; the next run moves pers-ms-01 on a fresh overlay.
    commands.rollout(path, only="pers-ms", conns=conns, health=Recorder(path, conns))
    assert versions(rec)["pers-ms-01"] == v2["persistence"]


def test_destroy_checks_every_vm_before_it_stops_one(fleet) -> None:
    """A group whose last VM is not this fleet's (same name, no fleet metadata): refused
    before the first VM is stopped; every VM of the group still runs."""
    path, conns, _, _ = fleet
    rec = Recorder(path, conns)
    foreign = rec.plan.nodes["pers-ms-03"]
    conn = conns.get(rec.plan.fleet.hypervisors[foreign.host])
    dom = lookup(conn, "pers-ms-03")
    dom.destroy()
    dom.undefine()
    conn.defineXML(
        "<domain type='test'><name>pers-ms-03</name><memory>1024</memory>"
        "<os><type>hvm</type></os></domain>"
    ).create()
    with pytest.raises(FleetError, match="pers-ms-03 is not managed by fleet test"):
        commands.destroy(path, only="pers-ms", conns=conns)
    for name in ("pers-ms-01", "pers-ms-02"):
        node = rec.plan.nodes[name]
        assert is_running(lookup(conns.get(rec.plan.fleet.hypervisors[node.host]), name))
