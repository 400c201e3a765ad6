"""One hypervisor as apply sees it: a libvirt connection and the domains on it.

libvirt-python is imported lazily, so rendering and planning need neither the binding nor a
daemon. Domains are always defined with VIR_DOMAIN_DEFINE_VALIDATE: without it libvirt drops
unknown elements silently. The VM's disks are fleet/storage.py's business.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from imagefactory.errors import FactoryError
from imagefactory.fleet.model import DomainType, Hypervisor
from imagefactory.guest import accel


class FleetError(FactoryError):
    """A hypervisor, libvirt or a VM file refused what apply asked for."""


def libvirt_module() -> Any:
    try:
        import libvirt
    except ImportError:
        raise FleetError(
            "libvirt-python is not installed (./bootstrap.sh installs it: "
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
    keeps its state per connection, so tests share one instance across commands). A
    connection is shared by a parallel rollout's threads (libvirt's API is thread-safe);
    opening one is guarded."""

    def __init__(self) -> None:
        self._open: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, hv: Hypervisor) -> Any:
        with self._lock:
            if hv.uri not in self._open:
                libvirt = libvirt_module()
                try:
                    self._open[hv.uri] = libvirt.open(hv.uri)
                except libvirt.libvirtError as exc:
                    raise FleetError(
                        f"hypervisor {hv.name}: cannot connect to {hv.uri}: "
                        f"{exc.get_error_message()}"
                    ) from None
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
    return choose_domain_type(conn, hv)[0]


def choose_domain_type(conn: Any, hv: Hypervisor) -> tuple[str, str]:
    """(domain type, why)."""
    if hv.domain_type is not DomainType.AUTO:
        return str(hv.domain_type.value), "set in the fleet file"
    offered = set(re.findall(r"<domain type='(\w+)'", conn.getCapabilities()))
    if "kvm" not in offered:
        return "qemu", "the host offers no KVM"
    if is_local(hv.uri):
        ok, why = _probe_local_kvm()
        return ("kvm", why) if ok else ("qemu", f"KVM is offered but {why.split(';')[0]}")
    return "kvm", "offered by the host"


def check_capacity(conn: Any, hv: Hypervisor) -> None:
    """The fleet file may not promise more than the host has (libvirt's node info)."""
    _model, memory_mib, cpus, *_ = conn.getInfo()
    short = []
    if hv.capacity.memory_gib * 1024 > memory_mib:
        short.append(f"memory {hv.capacity.memory_gib} GiB, the host has {memory_mib} MiB")
    if hv.capacity.vcpu > cpus:
        short.append(f"{hv.capacity.vcpu} vCPU, the host has {cpus} CPUs")
    if short:
        raise FleetError(
            f"hypervisor {hv.name} ({hv.uri}): the fleet file's capacity says "
            + "; ".join(short)
            + ": correct .hypervisors."
            f"{hv.name}.capacity (overcommit is set under overcommit:)"
        )


@functools.cache
def _probe_local_kvm() -> tuple[bool, str]:
    return accel.probe_kvm()  # boots a kernel under KVM: once per command is enough


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
        raise FleetError(
            f"hypervisor {hv.name}: libvirt refused the domain XML: {exc.get_error_message()}"
        ) from None


def is_running(dom: Any) -> bool:
    return bool(dom.isActive())


def start(hv: Hypervisor, dom: Any) -> None:
    libvirt = libvirt_module()
    try:
        dom.create()
    except libvirt.libvirtError as exc:
        raise FleetError(
            f"hypervisor {hv.name}: cannot start {dom.name()}: {exc.get_error_message()}"
        ) from None


def stop(dom: Any, timeout_s: float, say: Callable[[str], None]) -> bool:
    """ACPI shutdown, waiting up to timeout_s; then a hard power-off, which is reported
    (`virsh destroy` can lose writes the guest had not flushed). True if it was clean."""
    if not dom.isActive():
        return True
    with contextlib.suppress(Exception):  # a guest without ACPI: the hard stop follows
        dom.shutdown()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not dom.isActive():
            return True
        time.sleep(1)
    say(f"  {dom.name()}: no clean shutdown within {timeout_s:.0f} s: powered off")
    dom.destroy()
    return False


def undefine(dom: Any) -> None:
    """Undefine; a UEFI domain's NVRAM file goes with it (the flag is refused for others by
    some drivers)."""
    libvirt = libvirt_module()
    uefi = "<os firmware='efi'" in defined_xml(dom) or "<nvram" in defined_xml(dom)
    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM if uefi else 0)
