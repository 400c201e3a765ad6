"""fleet.rollout on three simulated hypervisors (libvirt's test driver): order, one cluster
member down at a time, rollback on a failed health gate, resumption, faults, gc.

The health gate is the one thing replaced here (the e2e runs the real one over SSH): a
recorder that checks, at each call, that no other member of the node's cluster is down."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from imagefactory.errors import FactoryError
from imagefactory.fleet import commands
from imagefactory.fleet.config import load_fleet
from imagefactory.fleet.health import Health
from imagefactory.fleet.hypervisor import FleetError, is_running, lookup
from imagefactory.fleet.nodes import Node
from imagefactory.fleet.rollout_state import RolloutState
from imagefactory.store import layout
from tests.fleetkit import TemplateStore
from tests.rolloutkit import Recorder, versions

pytestmark = pytest.mark.integration


def test_rollout_moves_every_vm_a_cluster_member_at_a_time(fleet, tmp_path: Path) -> None:
    """Cluster members one by one, workers two by two (the two clusters at once); all on
    version 2, old overlays gone, the same data disk files attached."""
    path, conns, v1, v2 = fleet
    disks = {p: p.stat().st_ino for p in tmp_path.glob("hv-*/vms/pers-ms-*/data-*.raw")}
    rec = Recorder(path, conns)
    commands.rollout(path, conns=conns, health=rec)
    calls = [name for name, _ in rec.calls]
    assert [n for n in calls if n.startswith("pers-ms")] == [
        "pers-ms-01",
        "pers-ms-02",
        "pers-ms-03",
    ]
    workers = [n for n in calls if n.startswith("wrk-app")]  # a batch's gates run at once
    assert (sorted(workers[:2]), sorted(workers[2:])) == (
        ["wrk-app-01", "wrk-app-02"],
        ["wrk-app-03", "wrk-app-04"],
    )
    seen = dict(rec.calls)
    assert seen["pers-ms-01"] == {
        "pers-ms-01": v2["persistence"],
        "pers-ms-02": v1["persistence"],
        "pers-ms-03": v1["persistence"],
    }
    assert seen["wrk-app-01"]["wrk-app-02"] == v2["workers"]  # same batch of two
    assert seen["wrk-app-01"]["wrk-app-03"] == v1["workers"]
    assert set(versions(rec).values()) == {v2["persistence"], v2["workers"]}
    assert not [
        p
        for p in tmp_path.glob("hv-*/vms/*/os-*.qcow2")
        if v1["persistence"] in p.name or v1["workers"] in p.name
    ]
    assert {p: p.stat().st_ino for p in disks} == disks
    again = Recorder(path, conns)
    report = commands.rollout(path, conns=conns, health=again)
    assert again.calls == [] and set(report.outcomes.values()) == {
        f"already on {v2['persistence']}",
        f"already on {v2['workers']}",
    }


def test_a_failed_health_gate_rolls_back_and_stops_its_cluster(fleet) -> None:
    """pers-ms-02 fails: back on version 1, pers-ms-03 untouched, the workers still move;
    the command fails naming the cluster."""
    path, conns, v1, v2 = fleet
    rec = Recorder(path, conns, fail={"pers-ms-02"})
    with pytest.raises(FleetError, match=r"rollout stopped in cluster\(s\) ms-main"):
        commands.rollout(path, conns=conns, health=rec)
    now = versions(rec)
    assert (now["pers-ms-01"], now["pers-ms-02"], now["pers-ms-03"]) == (
        v2["persistence"],
        v1["persistence"],
        v1["persistence"],
    )
    assert {now[f"wrk-app-0{i}"] for i in range(1, 5)} == {v2["workers"]}
    node = rec.plan.nodes["pers-ms-02"]
    assert RolloutState(rec.plan.fleet).get(node)["phase"] == "rolled-back"


def test_a_killed_rollout_resumes_where_it_was(fleet) -> None:
    """Killed in pers-ms-02's health gate: the next run finishes pers-ms-02 first, never
    touches pers-ms-01 again, then goes on."""
    path, conns, v1, v2 = fleet
    rec = Recorder(path, conns, kill={"pers-ms-02"})
    with pytest.raises(KeyboardInterrupt):
        commands.rollout(path, conns=conns, health=rec)
    node = rec.plan.nodes["pers-ms-02"]
    assert RolloutState(rec.plan.fleet).get(node)["phase"] == "health"
    rec2 = Recorder(path, conns)
    commands.rollout(path, conns=conns, health=rec2)
    assert rec2.calls[0][0] == "pers-ms-02"  # resumed before any lane starts
    # the workers' lane runs beside ms-main's: their gates may come in between
    assert [n for n, _ in rec2.calls if n.startswith("pers-ms")] == ["pers-ms-02", "pers-ms-03"]
    assert set(versions(rec2).values()) == {v2["persistence"], v2["workers"]}


def test_rollback_puts_an_unfinished_node_back(fleet) -> None:
    """After a kill mid-gate, --rollback restores pers-ms-02's previous overlay."""
    path, conns, v1, _v2 = fleet
    rec = Recorder(path, conns, kill={"pers-ms-02"})
    with pytest.raises(KeyboardInterrupt):
        commands.rollout(path, conns=conns, health=rec)
    report = commands.rollout(path, rollback=True, conns=conns, health=Recorder(path, conns))
    assert report.outcomes == {"pers-ms-02": f"rolled back to {v1['persistence']}"}
    assert versions(rec)["pers-ms-02"] == v1["persistence"]


def test_a_bad_channel_signature_touches_nothing(fleet, template_store: TemplateStore) -> None:
    """A stable pointer whose signature does not verify: refused before any VM is touched."""
    path, conns, v1, _ = fleet
    sig = template_store.settings.path / layout.channel_signature_key("persistence", "stable")
    sig.write_bytes(sig.read_bytes().replace(b"A", b"B", 1))
    rec = Recorder(path, conns)
    with pytest.raises(FactoryError, match="channel 'stable' pointer"):
        commands.rollout(path, conns=conns, health=rec)
    assert rec.calls == [] and set(versions(rec).values()) == set(v1.values())
    # No rollout state was written (the directory itself holds the fleet's lock, which the
    # fixture's apply took).
    assert list(RolloutState(rec.plan.fleet).dir.glob("*.json")) == []


def test_a_missing_data_disk_stops_before_any_downtime(fleet, tmp_path: Path) -> None:
    """pers-ms-01's data disk is gone: its cluster stops, the VM keeps running on version 1."""
    path, conns, v1, _ = fleet
    next(tmp_path.glob("hv-*/vms/pers-ms-01/data-*.raw")).unlink()
    rec = Recorder(path, conns)
    with pytest.raises(FleetError, match="pers-ms-01: data disk DATA_MS is missing"):
        commands.rollout(path, conns=conns, health=rec)
    assert versions(rec)["pers-ms-01"] == v1["persistence"]
    assert [n for n, _ in rec.calls if n.startswith("pers-ms")] == []


def test_gc_removes_only_templates_nothing_uses(fleet, tmp_path: Path, capsys) -> None:
    """Workers' version 1 stays while their overlays are built on it, persistence's goes once
    its VMs moved; the dry run removes nothing; the channel's version 2 is always kept."""
    path, conns, v1, v2 = fleet
    commands.rollout(path, only="pers-ms", conns=conns, health=Recorder(path, conns))
    assert commands.gc(path, apply=True, conns=conns) == "3 template(s) removed"
    names = {p.name for p in tmp_path.glob("hv-*/templates/*.qcow2")}
    assert names == {f"persistence-{v2['persistence']}.qcow2", f"workers-{v1['workers']}.qcow2"}
    commands.rollout(path, conns=conns, health=Recorder(path, conns))
    capsys.readouterr()
    assert commands.gc(path, conns=conns) == "3 template(s) unused (dry run)"
    assert "dry run: --apply removes it" in capsys.readouterr().out
    assert f"workers-{v1['workers']}.qcow2" in {
        p.name for p in tmp_path.glob("hv-*/templates/*.qcow2")
    }
    commands.gc(path, apply=True, conns=conns)
    names = {p.name for p in tmp_path.glob("hv-*/templates/*.qcow2")}
    assert names == {f"persistence-{v2['persistence']}.qcow2", f"workers-{v2['workers']}.qcow2"}


def test_status_shows_the_channel_version(fleet) -> None:
    """fleet.status: each VM's template beside the version its channel points at."""
    path, conns, v1, v2 = fleet
    line = next(ln for ln in commands.status(path, conns=conns).splitlines() if "pers-ms-01" in ln)
    assert v1["persistence"] in line and v2["persistence"] in line


def test_dry_run_lists_the_order(fleet) -> None:
    """--dry-run: per cluster, the nodes and versions, one at a time or in batches."""
    path, conns, v1, v2 = fleet
    text = commands.rollout(path, dry_run=True, conns=conns)
    assert "cluster ms-main (1 at a time): pers-ms-01@" in text
    assert "cluster wrk-app (2 at a time)" in text
    assert f"{v1['persistence']} -> {v2['persistence']}" in text


def test_an_unreachable_host_stops_its_clusters(fleet, tmp_path: Path) -> None:
    """A hypervisor lost after the first node moved: its clusters stop with the reason, the
    moved node stays on version 2, nothing is left half-done on the others."""
    path, conns, v1, v2 = fleet
    rec = Recorder(path, conns)
    victim = rec.plan.nodes["pers-ms-02"].host
    hv = rec.plan.fleet.hypervisors[victim]

    def lose_host(node: Node) -> Health:
        result = rec(node)
        if node.name == "pers-ms-01":
            Path(hv.uri.removeprefix("test://")).unlink()  # the next connect fails
            conns._open.pop(hv.uri).close()
        return result

    with pytest.raises(FleetError, match=r"rollout stopped in cluster\(s\) ms-main \(libvirt: "):
        commands.rollout(path, conns=conns, health=lose_host)
    assert rec.version_of("pers-ms-01") == v2["persistence"]
    others = [n for n in rec.plan.nodes.values() if n.host != victim and n.name != "pers-ms-01"]
    for node in others:
        assert rec.version_of(node.name) in (v1[node.group.family], v2[node.group.family])


def test_a_full_storage_dir_stops_before_the_node_goes_down(fleet, tmp_path: Path) -> None:
    """No room for pers-ms-01's new overlay (a 1 MiB tmpfs, filled): the cluster stops with
    the error, the VM is still running on version 1, its data disk untouched."""
    path, conns, v1, _v2 = fleet
    rec = Recorder(path, conns)
    vm_dir = next(tmp_path.glob("hv-*/vms/pers-ms-01"))
    data = next(vm_dir.glob("data-*.raw"))
    saved = tmp_path / "saved-data.raw"
    subprocess.run(["cp", "--sparse=always", str(data), str(saved)], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(vm_dir)], check=True)
    try:
        subprocess.run(["cp", "--sparse=always", str(saved), str(data)], check=True)
        subprocess.run(["sh", "-c", f"cat /dev/zero > {vm_dir}/filler"], capture_output=True)
        with pytest.raises(FleetError, match="(?i)no space left"):
            commands.rollout(path, only="pers-ms", conns=conns, health=rec)
        assert rec.version_of("pers-ms-01") == v1["persistence"]
        dom = lookup(
            conns.get(rec.plan.fleet.hypervisors[rec.plan.nodes["pers-ms-01"].host]), "pers-ms-01"
        )
        assert is_running(dom) and rec.calls == []
    finally:
        subprocess.run(["umount", str(vm_dir)], check=True)


def test_a_corrupt_template_in_the_store_touches_nothing(
    fleet, template_store: TemplateStore
) -> None:
    """The channel's blob damaged in the store: pull refuses it (sha256), no VM changes."""
    path, conns, v1, v2 = fleet
    blob = template_store.settings.path / layout.blob_key("persistence", v2["persistence"])
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    rec = Recorder(path, conns)
    with pytest.raises(FactoryError, match="sha256"):
        commands.rollout(path, conns=conns, health=rec)
    assert rec.calls == [] and set(versions(rec).values()) == set(v1.values())


def test_a_second_rollout_waits_for_none(fleet) -> None:
    """While one rollout holds the fleet's state lock, another is refused at once."""
    path, conns, _v1, _v2 = fleet
    state = RolloutState(load_fleet(path))
    with state.locked(), pytest.raises(FleetError, match="another rollout of this fleet"):
        commands.rollout(path, conns=conns, health=Recorder(path, conns))


def test_a_destroyed_vm_leaves_no_rollout_to_resume(fleet) -> None:
    """Killed mid-gate, then the VM is destroyed and re-applied: the next rollout does not
    resume the stale entry (destroy forgot it) and rolls the new VM like any other."""
    path, conns, _v1, v2 = fleet
    rec = Recorder(path, conns, kill={"pers-ms-02"})
    with pytest.raises(KeyboardInterrupt):
        commands.rollout(path, conns=conns, health=rec)
    commands.destroy(path, node="pers-ms-02", conns=conns)
    assert RolloutState(rec.plan.fleet).get(rec.plan.nodes["pers-ms-02"]) is None
    commands.apply(path, conns=conns)  # back, on the channel's version 2
    rec2 = Recorder(path, conns)
    report = commands.rollout(path, conns=conns, health=rec2)
    assert report.outcomes["pers-ms-02"] == f"already on {v2['persistence']}"
    assert set(versions(rec2).values()) == {v2["persistence"], v2["workers"]}


def test_a_missing_health_key_fails_before_any_downtime(fleet) -> None:
    """No rollout.ssh_identity: refused before a VM is touched."""
    path, conns, v1, _ = fleet
    with pytest.raises(FleetError, match="rollout.ssh_identity is not set"):
        commands.rollout(path, conns=conns)
    assert set(versions(Recorder(path, conns)).values()) == set(v1.values())


def test_a_forced_power_off_stops_the_cluster_after_that_node(fleet, monkeypatch) -> None:
    """A guest that ignores ACPI (fault injected at the stop): powered off, moved and healthy
    on version 2, and then its cluster stops with the reason; the others stay on version 1,
    running."""
    path, conns, v1, v2 = fleet
    from imagefactory.fleet import hypervisor

    real_stop = hypervisor.stop

    def stubborn(dom, timeout_s, say):  # type: ignore[no-untyped-def]
        if dom.name() == "pers-ms-01":
            say(f"  {dom.name()}: no clean shutdown within {timeout_s:.0f} s: powered off")
            dom.destroy()
            return False
        return real_stop(dom, timeout_s, say)

    monkeypatch.setattr(hypervisor, "stop", stubborn)
    rec = Recorder(path, conns)
    with pytest.raises(FleetError, match="pers-ms-01 did not shut down within 120 s"):
        commands.rollout(path, only="pers-ms", conns=conns, health=rec)
    now = versions(rec)
    assert (now["pers-ms-01"], now["pers-ms-02"], now["pers-ms-03"]) == (
        v2["persistence"],
        v1["persistence"],
        v1["persistence"],
    )
