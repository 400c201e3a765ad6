"""fleet.rollout runs every cluster at once (simulated hypervisors, libvirt's test driver): a
gate that sleeps in real threads records when each node was down, and the overlap proves the
limits: one member per cluster, `rollout_batch` of an independent group, `max_unavailable`
in the fleet, `max_parallel` per hypervisor; a failed cluster stops alone; a kill resumes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from imagefactory.fleet import commands
from imagefactory.fleet.hypervisor import Connections, FleetError
from imagefactory.fleet.rollout_state import RolloutState
from tests.fleetkit import TemplateStore, group, three_simulated_hosts, write_fleet
from tests.rolloutkit import SMALL, Overlap, Recorder, versions

pytestmark = pytest.mark.integration

GATE_S = 0.25  # a node's time down, standing for its shutdown, boot and health gate
CLUSTERS = ("ds-main", "mg-main", "ms-main")  # three members each; wrk-app: 4, two at once


@pytest.fixture
def wide(tmp_path: Path, template_store: TemplateStore) -> Any:
    """Three clusters and a worker group on three hosts, applied on version 1, version 2 on
    the channel."""
    path = write_fleet(
        tmp_path,
        three_simulated_hosts(tmp_path),
        {
            "pers-ms": group(
                "REDPANDA", "persistence", 3, "cluster", "ms-main", ("DATA_MS", 2), **SMALL
            ),
            "pers-mg": group(
                "HAZELCAST", "persistence", 3, "cluster", "mg-main", ("DATA_MG", 2), **SMALL
            ),
            "pers-ds-node": group(
                "SCYLLA_CLUSTER", "persistence", 3, "cluster", "ds-main", ("DATA_DS", 2), **SMALL
            ),
            "wrk-app": group(
                "APP", "workers", 4, "independent", "wrk-app", rollout_batch=2, **SMALL
            ),
        },
        store=template_store.store_section(),
    )
    families = ("persistence", "workers")
    v1 = {f: template_store.publish(f, tmp_path / "sealed", day=24) for f in families}
    conns = Connections()
    commands.apply(path, conns=conns)
    v2 = {f: template_store.publish(f, tmp_path / "sealed", day=25) for f in families}
    yield path, conns, v1, v2
    conns.close()


def limits(path: Path, max_unavailable: int, max_parallel: int) -> None:
    doc = yaml.safe_load(path.read_text())
    doc.setdefault("rollout", {})["max_unavailable"] = max_unavailable
    for hv in doc["hypervisors"].values():
        hv["max_parallel"] = max_parallel
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def roll(path: Path, conns: Connections, gate: Overlap) -> None:
    commands.rollout(path, conns=conns, health=gate.gate())


def test_every_cluster_rolls_at_once(wide) -> None:
    """Room for all: the four lanes overlap, still one member down per cluster and two
    workers at most, and the rollout takes about the largest cluster's time (3 nodes), not
    the sum of all (11 rounds)."""
    path, conns, _v1, v2 = wide
    limits(path, max_unavailable=10, max_parallel=4)
    gate = Overlap(Recorder(path, conns), GATE_S)
    roll(path, conns, gate)
    per_cluster = gate.peak(lambda n: n.group.cluster)
    assert per_cluster == {"ds-main": 1, "mg-main": 1, "ms-main": 1, "wrk-app": 2}
    assert 3 <= gate.peak(lambda n: "fleet")["fleet"] <= 5  # lanes overlap; 5 if all at once
    # from the first node down to the last one back (the store's checks come before)
    window = max(e for _, _, e in gate.spans) - min(s for _, s, _ in gate.spans)
    assert window < 2 * 3 * GATE_S, f"{window:.2f} s: not near 3 x {GATE_S} s (11 x: 2.75 s)"
    assert set(versions(gate.rec).values()) == set(v2.values())


@pytest.mark.parametrize(("max_unavailable", "max_parallel", "fleet_peak"), [(2, 4, 2), (10, 1, 3)])
def test_the_fleet_and_host_limits_hold(
    wide, max_unavailable: int, max_parallel: int, fleet_peak: int
) -> None:
    """Never more than max_unavailable down in the fleet nor max_parallel on a host; the
    binding limit is reached (it is the limit that holds the rollout back, not chance)."""
    path, conns, _v1, v2 = wide
    limits(path, max_unavailable, max_parallel)
    gate = Overlap(Recorder(path, conns), GATE_S)
    roll(path, conns, gate)
    assert gate.peak(lambda n: "fleet") == {"fleet": fleet_peak}
    assert max(gate.peak(lambda n: n.host).values()) <= max_parallel
    assert max(gate.peak(lambda n: n.group.cluster).values()) <= 2
    assert set(versions(gate.rec).values()) == set(v2.values())


def test_a_failed_cluster_stops_alone(wide) -> None:
    """pers-mg-02 fails its gate: it goes back, pers-mg-03 is not touched, every other
    cluster finishes; the command fails naming mg-main only."""
    path, conns, v1, v2 = wide
    limits(path, max_unavailable=10, max_parallel=4)
    gate = Overlap(Recorder(path, conns, fail={"pers-mg-02"}), GATE_S)
    with pytest.raises(FleetError, match=r"rollout stopped in cluster\(s\) mg-main \(") as err:
        roll(path, conns, gate)
    assert "ms-main" not in str(err.value) and "wrk-app" not in str(err.value)
    now = versions(gate.rec)
    assert [now[f"pers-mg-0{i}"] for i in (1, 2, 3)] == [
        v2["persistence"],
        v1["persistence"],
        v1["persistence"],
    ]
    others = {v for n, v in now.items() if not n.startswith("pers-mg")}
    assert others == set(v2.values())


def test_a_kill_mid_run_resumes(wide) -> None:
    """Killed in pers-ms-02's gate while other lanes run: pers-ms-02 is left at `health`;
    the next run finishes it first and moves the rest, one member per cluster down over both
    runs."""
    path, conns, _v1, v2 = wide
    limits(path, max_unavailable=10, max_parallel=4)
    first = Overlap(Recorder(path, conns, kill={"pers-ms-02"}), GATE_S)
    with pytest.raises(KeyboardInterrupt):
        roll(path, conns, first)
    node = first.rec.plan.nodes["pers-ms-02"]
    assert RolloutState(first.rec.plan.fleet).get(node)["phase"] == "health"
    second = Overlap(Recorder(path, conns), GATE_S)
    roll(path, conns, second)
    assert second.rec.calls[0][0] == "pers-ms-02"
    assert [n for n, _ in second.rec.calls if n.startswith("pers-ms")] == [
        "pers-ms-02",
        "pers-ms-03",
    ]
    for run in (first, second):
        peaks = run.peak(lambda n: n.group.cluster)
        assert max(peaks[c] for c in CLUSTERS if c in peaks) == 1
    assert set(versions(second.rec).values()) == set(v2.values())
