"""libvirt domain XML for one fleet VM, built with ElementTree from a typed spec.

The XML is the contract: what a VM is (size, disks, NIC, firmware, identity) is read back from
any domain XML by `observe`, the same function for the XML we render and for what libvirt
reports, so "unchanged", the diff before a redefine and drift in `fleet.status` all compare
like with like, whatever defaults libvirt adds.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagefactory.fleet.model import Fleet, Hypervisor, NetworkKind
from imagefactory.fleet.nodes import Node

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
FLEET_NS = "https://imagefactory.invalid/fleet/1"  # an identifier, never fetched
ET.register_namespace("qemu", QEMU_NS)
ET.register_namespace("fleet", FLEET_NS)
ACCESS_KEY_PREFIX = "imagefactory:ssh-authorized-key="  # read by the image's access hook


@dataclass(frozen=True)
class VmSpec:
    """Everything one domain definition is made from."""

    node: Node
    fleet: Fleet
    domain_type: str  # "kvm" or "qemu"
    firmware: str  # "bios" or "uefi", from the template's manifest
    template: Path
    template_version: str
    overlay: Path
    data: Path | None
    access_keys: tuple[str, ...] = ()
    console_log: Path | None = None

    @property
    def hypervisor(self) -> Hypervisor:
        return self.fleet.hypervisors[self.node.host]

    def oem_strings(self) -> list[str]:
        """SMBIOS type 11 strings: App-Core's role and what the node needs to join its
        cluster, then the ops keys for the access hook. No secrets: `virsh dumpxml` shows
        them."""
        node, net = self.node, self.fleet.network
        out = [
            f"appcore:role={node.group.role}",
            f"appcore:hostname={node.name}",
            f"appcore:cluster={node.group.cluster}",
            f"appcore:ip={node.ip}",
            f"appcore:prefix={net.subnet.prefixlen}",
            f"appcore:gateway={net.gateway}",
        ]
        if net.dns:
            out.append("appcore:dns=" + ",".join(str(d) for d in net.dns))
        if node.peers:
            out.append("appcore:peers=" + ",".join(str(p) for p in node.peers))
        return out + [ACCESS_KEY_PREFIX + key for key in self.access_keys]


def ssh_port(fleet: Fleet, node: Node) -> int:
    """The 127.0.0.1 port forwarded to a node's SSH on a user-network hypervisor."""
    names = sorted(n for g in fleet.groups.values() for n in g.node_names)
    return fleet.hypervisors[node.host].network.ssh_port_base + names.index(node.name)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def _metadata(root: ET.Element, spec: VmSpec) -> None:
    meta = _sub(_sub(root, "metadata"), f"{{{FLEET_NS}}}node")
    node = spec.node
    for tag, value in (
        ("fleet", spec.fleet.name),
        ("group", node.group.name),
        ("role", node.group.role),
        ("family", node.group.family),
        ("version", spec.template_version),
        ("ip", str(node.ip)),
        ("host", node.host),
    ):
        _sub(meta, f"{{{FLEET_NS}}}{tag}", value)


def _disks(devices: ET.Element, spec: VmSpec) -> None:
    disk = _sub(devices, "disk", type="file", device="disk")
    _sub(disk, "driver", name="qemu", type="qcow2", cache="none", discard="unmap")
    _sub(disk, "source", file=str(spec.overlay))
    _sub(disk, "target", dev="vda", bus="virtio")
    _sub(disk, "boot", order="1")
    data = spec.node.group.data_disk
    if data is not None and spec.data is not None:
        disk = _sub(devices, "disk", type="file", device="disk")
        _sub(disk, "driver", name="qemu", type="raw", cache="none", io="native")
        _sub(disk, "source", file=str(spec.data))
        _sub(disk, "target", dev="vdb", bus="virtio")
        _sub(disk, "serial", data.serial)  # App-Core finds the disk only by this


def _interface(root: ET.Element, devices: ET.Element, spec: VmSpec) -> None:
    attach = spec.hypervisor.network
    if attach.kind is NetworkKind.USER:
        # libvirt 9.0 ignores <portForward> on user interfaces: pass QEMU's own netdev
        # (tests and labs only; production VMs sit on a bridge).
        port = ssh_port(spec.fleet, spec.node)
        cmd = _sub(root, f"{{{QEMU_NS}}}commandline")
        for arg in (
            "-netdev",
            f"user,id=usernet0,hostfwd=tcp:127.0.0.1:{port}-:22",
            "-device",
            f"virtio-net-pci,netdev=usernet0,mac={spec.node.mac},bus=pcie.0,addr=0x10",
        ):
            _sub(cmd, f"{{{QEMU_NS}}}arg", value=arg)
        return
    kind = "bridge" if attach.kind is NetworkKind.BRIDGE else "network"
    iface = _sub(devices, "interface", type=kind)
    _sub(iface, "mac", address=spec.node.mac)
    _sub(iface, "source", **{kind: attach.value})
    _sub(iface, "model", type="virtio")


def render_domain(spec: VmSpec) -> str:
    """The domain XML of one VM (q35, virtio, SMBIOS identity, serial console, virtio-rng)."""
    node, group = spec.node, spec.node.group
    root = ET.Element("domain", type=spec.domain_type)
    _sub(root, "name", node.name)
    _sub(root, "uuid", node.uuid)
    _sub(root, "title", f"{node.name} ({group.role}, {spec.fleet.name})")
    _metadata(root, spec)
    _sub(root, "memory", str(group.size.memory_gib * 1024), unit="MiB")
    _sub(root, "vcpu", str(group.size.vcpu), placement="static")
    sysinfo = _sub(root, "sysinfo", type="smbios")
    system = _sub(sysinfo, "system")
    _sub(system, "entry", "imagefactory", name="manufacturer")
    _sub(system, "entry", node.name, name="serial")
    oem = _sub(sysinfo, "oemStrings")
    for value in spec.oem_strings():
        _sub(oem, "entry", value)
    os_el = _sub(root, "os", **({"firmware": "efi"} if spec.firmware == "uefi" else {}))
    _sub(os_el, "type", "hvm", arch="x86_64", machine="q35")
    _sub(os_el, "smbios", mode="sysinfo")
    features = _sub(root, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    if spec.domain_type == "kvm":
        _sub(root, "cpu", mode="host-model")
    _sub(root, "clock", offset="utc")
    _sub(root, "on_poweroff", "destroy")
    _sub(root, "on_reboot", "restart")
    _sub(root, "on_crash", "destroy")
    devices = _sub(root, "devices")
    _disks(devices, spec)
    _interface(root, devices, spec)
    serial = _sub(devices, "serial", type="pty")
    _sub(serial, "target", port="0")
    if spec.console_log is not None:
        _sub(serial, "log", file=str(spec.console_log), append="on")
    _sub(_sub(devices, "console", type="pty"), "target", type="serial", port="0")
    rng = _sub(devices, "rng", model="virtio")
    _sub(rng, "backend", "/dev/urandom", model="random")
    _sub(devices, "memballoon", model="virtio")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _memory_mib(el: ET.Element | None) -> int:
    if el is None or el.text is None:
        return 0
    factor = {"KiB": 1 / 1024, "k": 1 / 1024, "MiB": 1, "M": 1, "GiB": 1024, "G": 1024}
    return int(int(el.text) * factor.get(el.get("unit", "KiB"), 1 / 1024))


def observe(xml: str) -> dict[str, Any]:
    """What a domain XML says the VM is, in the terms of the fleet (libvirt defaults such as
    PCI addresses and controllers left out)."""
    root = ET.fromstring(xml)
    devices = root.find("devices")
    disks = []
    for disk in devices.findall("disk") if devices is not None else []:
        src, tgt = disk.find("source"), disk.find("target")
        disks.append(
            {
                "target": tgt.get("dev") if tgt is not None else None,
                "source": src.get("file") if src is not None else None,
                "serial": disk.findtext("serial"),
            }
        )
    nics = []
    for iface in devices.findall("interface") if devices is not None else []:
        src = iface.find("source")
        mac = iface.find("mac")
        nics.append(
            {
                "type": iface.get("type"),
                "source": dict(sorted(src.attrib.items())) if src is not None else {},
                "mac": mac.get("address") if mac is not None else None,
            }
        )
    os_el = root.find("os")
    meta = root.find(f"metadata/{{{FLEET_NS}}}node")
    return {
        "type": root.get("type"),
        "uuid": root.findtext("uuid"),
        "vcpu": int(root.findtext("vcpu") or 0),
        "memory_mib": _memory_mib(root.find("memory")),
        "firmware": "uefi" if os_el is not None and os_el.get("firmware") == "efi" else "bios",
        "disks": disks,
        "interfaces": nics,
        "oem_strings": [e.text for e in root.findall("sysinfo/oemStrings/entry")],
        "qemu_args": [
            a.get("value") for a in root.findall(f"{{{QEMU_NS}}}commandline/{{{QEMU_NS}}}arg")
        ],
        "rng": root.find("devices/rng") is not None,
        "fleet": {c.tag.split("}", 1)[1]: c.text for c in meta} if meta is not None else {},
    }


def diff(current: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """One line per field that differs: `vcpu: 4 -> 8`."""
    return [
        f"{key}: {current.get(key)!r} -> {wanted[key]!r}"
        for key in wanted
        if current.get(key) != wanted[key]
    ]
