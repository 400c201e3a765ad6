"""One hypervisor as apply sees it: a libvirt connection and the VM files in its storage dir.

libvirt-python is imported lazily, so rendering and planning need neither the binding nor a
daemon. Domains are always defined with VIR_DOMAIN_DEFINE_VALIDATE: without it libvirt drops
unknown elements silently.

Files: `<storage_dir>/templates/<family>-<version>.qcow2` (read-only, shared by every VM on
the host), `<storage_dir>/vms/<node>/os-<version>.qcow2` (the VM's overlay on it),
`<storage_dir>/vms/<node>/data-<serial>.raw` (sparse; created once, never re-created or
resized, removed only by `fleet.destroy --delete-data`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from imagefactory import accel
from imagefactory.errors import FactoryError
from imagefactory.fleet.model import GB, DomainType, Hypervisor
from imagefactory.fsutil import write_atomic
from imagefactory.tools import require, run

COPY_CHUNK = 4 * 1024 * 1024
MIB = 1024 * 1024


def disk_bytes(size_gb: int) -> int:
    """A data disk's size: the GB asked for, rounded up to whole MiB (QEMU opens raw disks
    with O_DIRECT under cache='none' and refuses sizes that are not a multiple of the block
    size: "Image size is not a multiple of request alignment")."""
    return -(-size_gb * GB // MIB) * MIB


class FleetError(FactoryError):
    """A hypervisor, libvirt or a VM file refused what apply asked for."""


def libvirt_module() -> Any:
    try:
        import libvirt
    except ImportError:
        raise FleetError("libvirt-python is not installed (./bootstrap.sh installs it: "
                         "apt-get install libvirt-dev gcc, then pip install libvirt-python)"
                         ) from None
    # libvirt prints every error to stderr by default; ours are raised with context instead.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


def defined_xml(dom: Any) -> str:
    """The persistent definition (what the next boot uses), not the running configuration."""
    return str(dom.XMLDesc(libvirt_module().VIR_DOMAIN_XML_INACTIVE))


def is_local(uri: str) -> bool:
    """A URI without a host part talks to this machine (qemu:///system, test:///...)."""
    return not urlsplit(uri).netloc


class Connections:
    """One open libvirt connection per URI for the life of a command (libvirt's test driver
    keeps its state per connection, so tests share one instance across commands)."""

    def __init__(self) -> None:
        self._open: dict[str, Any] = {}

    def get(self, hv: Hypervisor) -> Any:
        if hv.uri not in self._open:
            libvirt = libvirt_module()
            try:
                self._open[hv.uri] = libvirt.open(hv.uri)
            except libvirt.libvirtError as exc:
                raise FleetError(f"hypervisor {hv.name}: cannot connect to {hv.uri}: "
                                 f"{exc.get_error_message()}") from None
        return self._open[hv.uri]

    def close(self) -> None:
        for conn in self._open.values():
            with contextlib.suppress(Exception):  # closing is best effort
                conn.close()
        self._open.clear()


@contextmanager
def connections(shared: Connections | None = None) -> Iterator[Connections]:
    if shared is not None:
        yield shared
        return
    own = Connections()
    try:
        yield own
    finally:
        own.close()


def domain_type(conn: Any, hv: Hypervisor) -> str:
    """`kvm` only where the hypervisor offers it and (on this machine) a KVM guest really
    boots; `/dev/kvm` can exist while guests hang, and capabilities then still list kvm."""
    if hv.domain_type is not DomainType.AUTO:
        return str(hv.domain_type.value)
    offered = set(re.findall(r"<domain type='(\w+)'", conn.getCapabilities()))
    if "kvm" not in offered:
        return "qemu"
    if is_local(hv.uri):
        ok, _why = accel.probe_kvm()
        return "kvm" if ok else "qemu"
    return "kvm"


def check_capacity(conn: Any, hv: Hypervisor) -> None:
    """The fleet file may not promise more than the host has (libvirt's node info)."""
    _model, memory_mib, cpus, *_ = conn.getInfo()
    short = []
    if hv.capacity.memory_gib * 1024 > memory_mib:
        short.append(f"memory {hv.capacity.memory_gib} GiB, the host has {memory_mib} MiB")
    if hv.capacity.vcpu > cpus:
        short.append(f"{hv.capacity.vcpu} vCPU, the host has {cpus} CPUs")
    if short:
        raise FleetError(f"hypervisor {hv.name} ({hv.uri}): the fleet file's capacity says "
                         + "; ".join(short) + ": correct .hypervisors."
                         f"{hv.name}.capacity (overcommit is set under overcommit:)")


def lookup(conn: Any, name: str) -> Any | None:
    libvirt = libvirt_module()
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise FleetError(f"libvirt: {exc.get_error_message()}") from None


def define(conn: Any, hv: Hypervisor, xml: str) -> Any:
    libvirt = libvirt_module()
    try:
        return conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    except libvirt.libvirtError as exc:
        raise FleetError(f"hypervisor {hv.name}: libvirt refused the domain XML: "
                         f"{exc.get_error_message()}") from None


def is_running(dom: Any) -> bool:
    return bool(dom.isActive())


def start(hv: Hypervisor, dom: Any) -> None:
    libvirt = libvirt_module()
    try:
        dom.create()
    except libvirt.libvirtError as exc:
        raise FleetError(f"hypervisor {hv.name}: cannot start {dom.name()}: "
                         f"{exc.get_error_message()}") from None


def stop(dom: Any, timeout_s: float, say: Callable[[str], None]) -> None:
    """ACPI shutdown, waiting up to timeout_s; then a hard power-off, which is reported
    (`virsh destroy` can lose writes the guest had not flushed)."""
    if not dom.isActive():
        return
    with contextlib.suppress(Exception):  # a guest without ACPI: the hard stop follows
        dom.shutdown()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not dom.isActive():
            return
        time.sleep(1)
    say(f"  {dom.name()}: no clean shutdown within {timeout_s:.0f} s: powered off")
    dom.destroy()


def undefine(dom: Any) -> None:
    """Undefine; a UEFI domain's NVRAM file goes with it (the flag is refused for others by
    some drivers)."""
    libvirt = libvirt_module()
    uefi = "<os firmware='efi'" in defined_xml(dom) or "<nvram" in defined_xml(dom)
    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM if uefi else 0)


class VmFiles:
    """The VM files of one hypervisor, under its storage dir on this machine."""

    def __init__(self, hv: Hypervisor, offline: bool = False) -> None:
        if not offline and not is_local(hv.uri):
            raise FleetError(
                f"hypervisor {hv.name} ({hv.uri}) is remote: VM files are created on the "
                f"hypervisor itself; run `invoke fleet.apply --host={hv.name}` there with "
                "a local URI (qemu:///system)")
        self.hv = hv
        self.root = hv.storage_dir

    @classmethod
    def offline(cls, hv: Hypervisor) -> VmFiles:
        """Paths only, for rendering XML away from the hypervisor."""
        return cls(hv, offline=True)

    def template(self, family: str, version: str) -> Path:
        return self.root / "templates" / f"{family}-{version}.qcow2"

    def vm_dir(self, node: str) -> Path:
        return self.root / "vms" / node

    def overlay(self, node: str, version: str) -> Path:
        return self.vm_dir(node) / f"os-{version}.qcow2"

    def data(self, node: str, serial: str) -> Path:
        return self.vm_dir(node) / f"data-{serial.lower()}.raw"

    def console_log(self, node: str) -> Path:
        return self.vm_dir(node) / "console.log"

    def install_template(self, source: Path, sha256: str, family: str, version: str) -> bool:
        """Copy a verified template in once per version, checking its sha256 while copying;
        False when it is already there."""
        dest = self.template(family, version)
        if dest.exists():
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        digest = hashlib.sha256()
        try:
            with source.open("rb") as src, tmp.open("wb") as out:
                while chunk := src.read(COPY_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != sha256:
                raise FleetError(f"{source}: sha256 {digest.hexdigest()} does not match the "
                                 f"signed manifest's {sha256}; not installed on {self.hv.name}")
            tmp.chmod(0o444)
            tmp.rename(dest)
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def create_overlay(self, node: str, template: Path, version: str, size_gb: int) -> bool:
        """The VM's OS disk: a qcow2 overlay on the template, grown to the OS disk size."""
        path = self.overlay(node, version)
        if path.exists():
            return False
        virtual = int(json.loads(run([require("qemu-img"), "info", "--output=json",
                                      str(template)]).stdout)["virtual-size"])
        if size_gb * GB < virtual:
            raise FleetError(f"{node}: os_disk_gb {size_gb} is smaller than its template "
                             f"{template.name} ({virtual / GB:.1f} GB)")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.unlink(missing_ok=True)
        run([require("qemu-img"), "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
             str(template), str(tmp), str(size_gb * GB)])
        tmp.rename(path)
        return True

    def create_data(self, node: str, serial: str, size_gb: int) -> bool:
        """A blank sparse data disk, only if none exists: an existing one is never touched."""
        path = self.data(node, serial)
        if path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as fh:
            fh.truncate(disk_bytes(size_gb))
        os.link(tmp, path)  # fails if a disk appeared meanwhile: never overwrite one
        tmp.unlink()
        return True

    def data_disks(self, node: str) -> list[Path]:
        return sorted(self.vm_dir(node).glob("data-*.raw"))

    def remove_os(self, node: str) -> list[Path]:
        """Remove the node's overlays and console log; data disks stay."""
        removed = []
        for path in sorted(self.vm_dir(node).glob("os-*.qcow2")) + [self.console_log(node)]:
            if path.exists():
                path.unlink()
                removed.append(path)
        return removed

    def write_domain_xml(self, node: str, xml: str) -> None:
        """The last applied definition beside the VM's disks, for people and backups."""
        self.vm_dir(node).mkdir(parents=True, exist_ok=True)
        write_atomic(self.vm_dir(node) / "domain.xml", xml)
