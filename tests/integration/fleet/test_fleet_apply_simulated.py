"""fleet.apply, status and destroy on three simulated hypervisors (libvirt's test driver):
real libvirt validation, real qcow2 overlays and data files, templates pulled and verified."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from imagefactory.errors import FactoryError
from imagefactory.fleet import commands
from imagefactory.fleet.hypervisor import Connections, FleetError
from imagefactory.fleet.placement import PlacementError
from tests.fleetkit import TemplateStore, group, simulated_host, write_fleet

pytestmark = pytest.mark.integration
SMALL = {"vcpu": 2, "memory_gib": 2, "os_disk_gb": 1}


def fleet_file(tmp_path: Path, store: TemplateStore, cpus: int = 16, memory_gib: int = 64) -> Path:
    hosts = {}
    for name in ("hv-a", "hv-b", "hv-c"):
        hosts[name] = {
            "uri": simulated_host(tmp_path, name, cpus, memory_gib),
            "storage_dir": str(tmp_path / name),
            "capacity": {"vcpu": cpus, "memory_gib": memory_gib, "storage_gb": 100},
            "network": {"bridge": "br-fleet"},
        }
    s = store.settings
    return write_fleet(
        tmp_path,
        hosts,
        {
            "pers-ms": group(
                "REDPANDA", "persistence", 3, "cluster", "ms-main", ("DATA_MS", 2), **SMALL
            ),
            "wrk-app": group("APP", "workers", 2, "independent", "wrk-app", **SMALL),
        },
        store={
            "kind": "fs",
            "path": str(s.path),
            "allowed_signers": str(s.allowed_signers),
            "image_dir": str(s.image_dir),
        },
    )


@pytest.fixture
def setup(tmp_path: Path, template_store: TemplateStore) -> tuple[Path, Connections]:
    template_store.publish("persistence", tmp_path / "sealed", seed=1)
    template_store.publish("workers", tmp_path / "sealed", seed=2)
    conns = Connections()
    yield fleet_file(tmp_path, template_store), conns
    conns.close()


def backing(path: Path) -> str:
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", str(path)], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(info)["backing-filename"]


def test_apply_creates_every_vm_then_changes_nothing(setup, tmp_path: Path) -> None:
    """First apply: 5 VMs created and running, one per host per cluster; second: unchanged."""
    path, conns = setup
    first = commands.apply(path, conns=conns)
    assert sorted(first.actions) == [
        "pers-ms-01",
        "pers-ms-02",
        "pers-ms-03",
        "wrk-app-01",
        "wrk-app-02",
    ]
    assert all(a.startswith("created and started") for a in first.actions.values())
    plan = json.loads(commands.plan(path, as_json=True))
    hosts = {plan["nodes"][n]["host"] for n in ("pers-ms-01", "pers-ms-02", "pers-ms-03")}
    assert hosts == {"hv-a", "hv-b", "hv-c"}
    node = plan["nodes"]["pers-ms-01"]
    vm = tmp_path / node["host"] / "vms" / "pers-ms-01"
    assert (
        Path(backing(next(vm.glob("os-*.qcow2")))).parent == tmp_path / node["host"] / "templates"
    )
    assert (vm / "data-data_ms.raw").stat().st_size == 1908 * 1024**2  # 2 GB in whole MiB
    second = commands.apply(path, conns=conns)
    assert set(second.actions.values()) == {"unchanged"}
    status = commands.status(path, conns=conns)
    assert status.count("running") == 5 and "none" in status.splitlines()[1]


def test_changed_size_is_shown_and_applied(setup, capsys) -> None:
    """A group resized in the fleet file: the diff is printed, the definition replaced."""
    path, conns = setup
    commands.apply(path, conns=conns)
    doc = yaml.safe_load(path.read_text())
    doc["groups"]["wrk-app"]["vcpu"] = 4
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    capsys.readouterr()
    report = commands.apply(path, conns=conns)
    out = capsys.readouterr().out
    assert "wrk-app-01:   vcpu: 2 -> 4" in out
    assert report.actions["wrk-app-01"].startswith("changed")
    assert report.actions["pers-ms-01"] == "unchanged"
    assert set(commands.apply(path, conns=conns).actions.values()) == {"unchanged"}


def test_dry_run_touches_nothing(setup, tmp_path: Path) -> None:
    """--dry-run says what it would create and leaves no file and no domain."""
    path, conns = setup
    report = commands.apply(path, dry_run=True, conns=conns)
    assert all(a.startswith("would create") for a in report.actions.values())
    assert not list(tmp_path.glob("hv-*/vms"))
    assert "missing" in commands.status(path, conns=conns)


def test_destroy_keeps_data_and_a_new_apply_reuses_it(setup, tmp_path: Path) -> None:
    """destroy --only undefines the group and removes overlays; the data disks stay, and the
    next apply attaches the same files instead of new ones."""
    path, conns = setup
    commands.apply(path, conns=conns)
    disks = sorted(tmp_path.glob("hv-*/vms/pers-ms-*/data-data_ms.raw"))
    assert len(disks) == 3
    for disk in disks:
        with disk.open("r+b") as fh:
            fh.write(b"written by the database")
    commands.destroy(path, only="pers-ms", conns=conns)
    assert not list(tmp_path.glob("hv-*/vms/pers-ms-*/os-*.qcow2"))
    assert "missing" in commands.status(path, only="pers-ms", conns=conns)
    report = commands.apply(path, conns=conns)
    assert report.actions["pers-ms-02"].startswith("created")
    for disk in disks:
        assert disk.read_bytes()[:23] == b"written by the database"


def test_delete_data_names_what_goes(setup, tmp_path: Path, capsys) -> None:
    """--delete-data on one node lists its disk and size before deleting only that disk."""
    path, conns = setup
    commands.apply(path, conns=conns)
    capsys.readouterr()
    commands.destroy(path, node="pers-ms-01", delete_data=True, conns=conns)
    out = capsys.readouterr().out
    assert "pers-ms-01: DELETING data disk" in out and "2,000,683,008 bytes" in out
    assert not list(tmp_path.glob("hv-*/vms/pers-ms-01/data-*"))
    assert len(list(tmp_path.glob("hv-*/vms/pers-ms-0[23]/data-*"))) == 2


def test_destroy_needs_a_target(setup) -> None:
    """Neither --only nor --node: refused, nothing stopped."""
    path, conns = setup
    with pytest.raises(FleetError, match="exactly one of --only=GROUP or --node=NAME"):
        commands.destroy(path, conns=conns)


def test_too_small_hosts_fail_before_anything_is_touched(
    tmp_path: Path, template_store: TemplateStore
) -> None:
    """Hosts of 4 GiB cannot hold 5 x 2 GiB within the cluster rule: plan fails, no VM."""
    template_store.publish("persistence", tmp_path / "sealed", seed=1)
    path = fleet_file(tmp_path, template_store, cpus=4, memory_gib=3)
    with pytest.raises(PlacementError) as err:
        commands.apply(path)
    assert "fleet needs 10 GiB memory, the hypervisors offer 9" in str(err.value)
    assert not list(tmp_path.glob("hv-*/vms"))


def test_capacity_beyond_the_host_is_refused(setup, tmp_path: Path) -> None:
    """A fleet file promising 64 GiB on a host libvirt reports with 8 GiB: refused."""
    path, conns = setup
    doc = yaml.safe_load(path.read_text())
    doc["hypervisors"]["hv-b"]["uri"] = simulated_host(tmp_path, "hv-b-small", 16, 8)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(FleetError, match="memory 64 GiB, the host has 8192 MiB"):
        commands.apply(path, host="hv-b", conns=conns)


def test_a_tampered_template_is_not_installed(setup, tmp_path: Path) -> None:
    """A pulled template altered on disk after pull: the copy onto the host is refused."""
    path, conns = setup
    commands.apply(path, only="wrk-app", dry_run=True, conns=conns)
    doc = yaml.safe_load(path.read_text())
    pulled = Path(doc["store"]["image_dir"])
    commands.apply(path, only="wrk-app", conns=conns)  # pulls and installs
    image = next(pulled.glob("persistence-*.qcow2"), None)
    assert image is None  # only the workers family was needed
    commands.destroy(path, only="wrk-app", conns=conns)
    for host in ("hv-a", "hv-b", "hv-c"):
        for tpl in (tmp_path / host / "templates").glob("*.qcow2"):
            tpl.chmod(0o644)
            tpl.unlink()
    worker = next(pulled.glob("workers-*.qcow2"))
    worker.chmod(0o644)
    with worker.open("r+b") as fh:
        fh.seek(4096)
        fh.write(b"\xff" * 16)
    with pytest.raises(FleetError, match="does not match the signed manifest"):
        commands.apply(path, only="wrk-app", conns=conns)


def test_a_vm_whose_host_is_gone_is_not_moved(setup, tmp_path: Path) -> None:
    """hv-c leaves the fleet file: its VMs would move away from their data disks; apply
    refuses and names them, nothing is created elsewhere."""
    path, conns = setup
    commands.apply(path, conns=conns)
    plan = json.loads(commands.plan(path, as_json=True))
    on_c = sorted(n for n, v in plan["nodes"].items() if v["host"] == "hv-c")
    doc = yaml.safe_load(path.read_text())
    del doc["hypervisors"]["hv-c"]
    doc["groups"]["pers-ms"]["topology"] = "independent"  # two hosts cannot keep a quorum
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(FleetError, match=f"{on_c[0]}.* would move to another hypervisor"):
        commands.apply(path, conns=conns)


def test_a_vm_never_changes_data_disk(setup, tmp_path: Path) -> None:
    """A definition that would attach another data disk to an existing VM is refused."""
    path, conns = setup
    commands.apply(path, conns=conns)
    doc = yaml.safe_load(path.read_text())
    for host in doc["hypervisors"].values():
        host["storage_dir"] = host["storage_dir"] + "-moved"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(FleetError, match="its data disk would change from"):
        commands.apply(path, only="pers-ms", conns=conns)


def test_delete_data_needs_a_node_name(setup) -> None:
    """--delete-data with --only (a whole group) is refused: data goes only by name."""
    path, conns = setup
    with pytest.raises(FleetError, match="only of a VM named with --node"):
        commands.destroy(path, only="pers-ms", delete_data=True, conns=conns)


def test_dry_run_checks_the_channel_like_apply(setup, tmp_path: Path) -> None:
    """A channel the store does not have: the dry run fails as apply would, nothing made."""
    path, conns = setup
    doc = yaml.safe_load(path.read_text())
    doc["channel"] = "no-such-channel"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(FactoryError, match="no-such-channel"):
        commands.apply(path, dry_run=True, conns=conns)
    assert not list(tmp_path.glob("hv-*/vms"))
