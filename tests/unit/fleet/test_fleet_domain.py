"""The domain XML of a fleet VM: identity, disks, NIC, firmware; read back by observe()."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

from imagefactory.fleet.config import load_fleet
from imagefactory.fleet.domain import VmSpec, diff, observe, render_domain
from imagefactory.fleet.model import NetworkAttachment, NetworkKind
from imagefactory.fleet.nodes import plan_fleet
from tests.fleetkit import production_with


def spec_for(tmp_path: Path, node: str, firmware: str = "bios") -> VmSpec:
    plan = plan_fleet(load_fleet(production_with(tmp_path, 6)))
    n = plan.nodes[node]
    data = Path(f"/srv/vms/{node}/data.raw") if n.group.data_disk else None
    return VmSpec(
        node=n,
        fleet=plan.fleet,
        domain_type="qemu",
        firmware=firmware,
        template=Path("/srv/templates/persistence-v1.qcow2"),
        template_version="v1",
        overlay=Path(f"/srv/vms/{node}/os-v1.qcow2"),
        data=data,
        access_keys=("ssh-ed25519 AAAAC3Nza ops@test",),
    )


def test_identity_strings_carry_role_and_cluster(tmp_path: Path) -> None:
    """SMBIOS type 11: role, hostname, cluster, IP config, all 8 PXC peers, the ops key."""
    spec = spec_for(tmp_path, "pers-db-master-01")
    strings = observe(render_domain(spec))["oem_strings"]
    node = spec.node
    assert strings[:6] == [
        "appcore:role=MYSQL_MASTER",
        "appcore:hostname=pers-db-master-01",
        "appcore:cluster=pxc-main",
        f"appcore:ip={node.ip}",
        "appcore:prefix=22",
        "appcore:gateway=10.20.0.1",
    ]
    assert strings[6] == "appcore:dns=10.20.0.2,10.20.0.3"
    assert strings[7] == "appcore:peers=" + ",".join(str(p) for p in node.peers)
    assert strings[8] == "imagefactory:ssh-authorized-key=ssh-ed25519 AAAAC3Nza ops@test"


def test_data_disk_has_its_serial(tmp_path: Path) -> None:
    """The data disk is vdb with serial DATA_DS; the OS overlay is vda."""
    disks = observe(render_domain(spec_for(tmp_path, "pers-ds-node-02")))["disks"]
    assert disks == [
        {"target": "vda", "source": "/srv/vms/pers-ds-node-02/os-v1.qcow2", "serial": None},
        {"target": "vdb", "source": "/srv/vms/pers-ds-node-02/data.raw", "serial": "DATA_DS"},
    ]


def test_worker_has_no_data_disk(tmp_path: Path) -> None:
    """Workers get only their OS disk."""
    assert len(observe(render_domain(spec_for(tmp_path, "wrk-app-01")))["disks"]) == 1


def test_every_vm_has_virtio_rng_and_a_serial_console(tmp_path: Path) -> None:
    """virtio-rng (TCG boots stall on getrandom without it) and a serial console."""
    root = ET.fromstring(render_domain(spec_for(tmp_path, "pers-ms-01")))
    assert root.find("devices/rng/backend").text == "/dev/urandom"
    assert root.find("devices/serial/target").get("port") == "0"


def test_uefi_template_boots_with_efi_firmware(tmp_path: Path) -> None:
    """A template whose manifest says uefi gets <os firmware='efi'>."""
    xml = render_domain(spec_for(tmp_path, "pers-mg-01", firmware="uefi"))
    assert ET.fromstring(xml).find("os").get("firmware") == "efi"
    assert observe(xml)["firmware"] == "uefi"


def test_bridge_nic_has_the_stable_mac(tmp_path: Path) -> None:
    """Production NIC: the fleet bridge, virtio, the MAC derived from the name."""
    spec = spec_for(tmp_path, "wrk-api-02")
    assert observe(render_domain(spec))["interfaces"] == [
        {"type": "bridge", "source": {"bridge": "br-fleet"}, "mac": spec.node.mac}
    ]


def test_user_network_forwards_ssh_on_loopback(tmp_path: Path) -> None:
    """Test/lab NIC: QEMU user netdev, SSH forwarded on 127.0.0.1, same MAC."""
    spec = spec_for(tmp_path, "wrk-api-02")
    hv = dataclasses.replace(spec.hypervisor, network=NetworkAttachment(NetworkKind.USER, "22000"))
    fleet = dataclasses.replace(
        spec.fleet, hypervisors={**spec.fleet.hypervisors, spec.node.host: hv}
    )
    args = observe(render_domain(dataclasses.replace(spec, fleet=fleet)))["qemu_args"]
    assert args[0] == "-netdev" and args[1].startswith("user,id=usernet0,hostfwd=tcp:127.0.0.1:")
    assert f"mac={spec.node.mac}" in args[3]


def test_diff_names_what_changed(tmp_path: Path) -> None:
    """A resized node: the diff says vcpu and memory, nothing else."""
    spec = spec_for(tmp_path, "wrk-pg-01")
    bigger = dataclasses.replace(
        spec.node.group, size=dataclasses.replace(spec.node.group.size, vcpu=8, memory_gib=16)
    )
    other = dataclasses.replace(spec, node=dataclasses.replace(spec.node, group=bigger))
    assert diff(observe(render_domain(spec)), observe(render_domain(other))) == [
        "vcpu: 4 -> 8",
        "memory_mib: 8192 -> 16384",
    ]
