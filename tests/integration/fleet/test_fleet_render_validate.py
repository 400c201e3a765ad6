"""All 71 production domains validate with libvirt's own tools (schema and semantics)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from imagefactory.fleet import commands
from tests.fleetkit import production_with
from tests.prereq import require_tools

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    work = tmp_path_factory.mktemp("render")
    commands.render(production_with(work, 6), work / "xml", "kvm")
    files = sorted((work / "xml").glob("*/*.xml"))
    assert len(files) == 71
    return files


def test_every_domain_passes_virt_xml_validate(rendered: list[Path]) -> None:
    """`virt-xml-validate FILE domain` (libvirt's RNG schema) accepts all 71."""
    require_tools("virt-xml-validate", "xmllint")
    bad = [
        f.name
        for f in rendered
        if subprocess.run(["virt-xml-validate", str(f), "domain"], capture_output=True).returncode
        != 0
    ]
    assert bad == []


def test_every_domain_defines_with_validation(rendered: list[Path]) -> None:
    """libvirt's test driver defines all 71 with VIR_DOMAIN_DEFINE_VALIDATE."""
    import libvirt

    conn = libvirt.open("test:///default")
    try:
        for f in rendered:
            dom = conn.defineXMLFlags(f.read_text(), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
            assert dom.name() == f.stem
        assert len(conn.listDefinedDomains()) >= 71
    finally:
        conn.close()


def test_a_misspelled_element_is_refused(rendered: list[Path]) -> None:
    """The validation is real: a misspelt element fails to define (without the flag libvirt
    would drop it silently)."""
    import libvirt

    xml = rendered[0].read_text().replace("<vcpu ", "<vcpux ").replace("</vcpu>", "</vcpux>")
    conn = libvirt.open("test:///default")
    try:
        with pytest.raises(libvirt.libvirtError):
            conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    finally:
        conn.close()
