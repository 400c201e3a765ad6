"""A rollout killed in each of its phases, then run again (libvirt's test driver): the node left
mid-way is finished or undone before anything else moves, it is gated once, the cluster ends on
the new version and no overlay is left behind.

Where the kill lands is chosen by wrapping one step of the rollout (the health-gate phase is
covered by test_a_killed_rollout_resumes_where_it_was)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.fleet import commands
from imagefactory.fleet.hypervisor import FleetError
from imagefactory.fleet.rollout import Rollout
from imagefactory.fleet.rollout_state import RolloutState
from tests.rolloutkit import Recorder, versions

pytestmark = pytest.mark.integration
NODE = "pers-ms-02"


def kill_in(monkeypatch, step: str, after: bool) -> None:
    """Raise KeyboardInterrupt in Rollout.<step> for NODE, before or after the step ran."""
    real = getattr(Rollout, step)

    def wrapped(self, node, *args, **kwargs):
        if node.name != NODE:
            return real(self, node, *args, **kwargs)
        monkeypatch.setattr(Rollout, step, real)  # once
        if not after:
            raise KeyboardInterrupt
        result = real(self, node, *args, **kwargs)
        raise KeyboardInterrupt
        return result  # pragma: no cover

    monkeypatch.setattr(Rollout, step, wrapped)


@pytest.mark.parametrize(
    ("step", "after", "phase", "switched"),
    [
        ("replace", False, "prepared", False),  # new overlay made, VM untouched
        ("restart_on", False, "replacing", False),  # pre-stop done, not yet stopped
        ("restart_on", True, "replacing", True),  # switched and started, gate not begun
    ],
)
def test_a_rollout_killed_in_each_phase_resumes(
    fleet, tmp_path: Path, monkeypatch, step: str, after: bool, phase: str, switched: bool
) -> None:
    """Killed at `phase`: the next run deals with pers-ms-02 first, gates it once, and leaves
    every node on version 2 with exactly one overlay each."""
    path, conns, v1, v2 = fleet
    old, new = v1["persistence"], v2["persistence"]
    kill_in(monkeypatch, step, after)
    rec = Recorder(path, conns)
    with pytest.raises(KeyboardInterrupt):
        commands.rollout(path, conns=conns, health=rec)
    state = RolloutState(rec.plan.fleet)
    assert state.get(rec.plan.nodes[NODE])["phase"] == phase
    assert rec.version_of(NODE) == (new if switched else old)
    assert NODE not in [name for name, _ in rec.calls]

    rec2 = Recorder(path, conns)
    commands.rollout(path, conns=conns, health=rec2)
    ms = [name for name, _ in rec2.calls if name.startswith("pers-ms")]
    assert ms == [NODE, "pers-ms-03"]  # pers-ms-01 was done before the kill
    assert set(versions(rec2).values()) == {new, v2["workers"]}
    overlays = sorted(p.name for p in tmp_path.glob(f"hv-*/vms/{NODE}/os-*.qcow2"))
    assert len(overlays) == 1 and new in overlays[0], overlays
    assert state.get(rec.plan.nodes[NODE])["phase"] == "done"


def test_a_rollout_killed_while_rolling_back_finishes_the_rollback(
    fleet, tmp_path: Path, monkeypatch
) -> None:
    """pers-ms-02 fails its gate and the run is killed in the switch back: the next run puts it
    on version 1, gates it, removes the new overlay and stops its cluster."""
    path, conns, v1, v2 = fleet
    old, new = v1["persistence"], v2["persistence"]
    real = Rollout.restart_on
    calls = {"n": 0}

    def second_switch_dies(self, node, tpl):
        if node.name == NODE:
            calls["n"] += 1
            if calls["n"] == 2:  # the first is the switch to v2, the second the way back
                raise KeyboardInterrupt
        return real(self, node, tpl)

    monkeypatch.setattr(Rollout, "restart_on", second_switch_dies)
    rec = Recorder(path, conns, fail={NODE})
    with pytest.raises(KeyboardInterrupt):
        commands.rollout(path, conns=conns, health=rec)
    state = RolloutState(rec.plan.fleet)
    assert state.get(rec.plan.nodes[NODE])["phase"] == "rolling-back"
    monkeypatch.setattr(Rollout, "restart_on", real)

    rec2 = Recorder(path, conns)
    with pytest.raises(FleetError, match=rf"ms-main \({NODE} was being rolled back\)"):
        commands.rollout(path, conns=conns, health=rec2)
    assert state.get(rec.plan.nodes[NODE])["phase"] == "rolled-back"
    assert rec2.version_of(NODE) == old
    assert rec2.version_of("pers-ms-03") == old  # its cluster stopped
    assert [name for name, _ in rec2.calls if name.startswith("pers-ms")] == [NODE]
    overlays = sorted(p.name for p in tmp_path.glob(f"hv-*/vms/{NODE}/os-*.qcow2"))
    assert len(overlays) == 1 and old in overlays[0] and new not in overlays[0], overlays
