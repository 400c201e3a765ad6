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
from imagefactory.fleet.health import Gate, Health
from imagefactory.fleet.hypervisor import is_running, lookup
from imagefactory.fleet.nodes import Node
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
    """pers-ms-02 runs but is not in the cluster: nobody of ms-main goes down."""
    path, conns, v1, _ = fleet
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
