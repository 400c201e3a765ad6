"""Stopping a VM: ACPI first; a guest that ignores it is powered off and that is said."""

from __future__ import annotations

from imagefactory.fleet.hypervisor import stop


class StubbornDomain:
    """A libvirt domain stand-in whose guest ignores ACPI shutdown."""

    def __init__(self, obeys: bool) -> None:
        self.active, self.obeys, self.calls = True, obeys, []

    def name(self) -> str:
        return "vm-01"

    def isActive(self) -> bool:
        return self.active

    def shutdown(self) -> None:
        self.calls.append("shutdown")
        if self.obeys:
            self.active = False

    def destroy(self) -> None:
        self.calls.append("destroy")
        self.active = False


def test_clean_shutdown_is_not_forced() -> None:
    """A guest that shuts down on ACPI is never powered off."""
    dom, said = StubbornDomain(obeys=True), []
    stop(dom, 5, said.append)
    assert dom.calls == ["shutdown"] and said == []


def test_a_guest_that_ignores_acpi_is_powered_off_and_reported() -> None:
    """After the timeout: a hard stop, and one line saying so."""
    dom, said = StubbornDomain(obeys=False), []
    stop(dom, 1, said.append)
    assert dom.calls == ["shutdown", "destroy"]
    assert said == ["  vm-01: no clean shutdown within 1 s: powered off"]
