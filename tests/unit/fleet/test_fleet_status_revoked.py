"""fleet.status marks VMs whose template version is revoked (rendering only, no libvirt)."""

from __future__ import annotations

from imagefactory.fleet.status import VmStatus, render_status

V1 = "20261124T101500Z-1a2b3c4d5e6f"
V2 = "20261125T101500Z-6f5e4d3c2b1a"


def test_fleet_status_marks_a_vm_on_a_revoked_template() -> None:
    """fleet.status: REVOKED in the VM's row and a closing line with the reason."""
    rows = [
        VmStatus("pers-ms-01", "hv-a", "running", V1, (), V2, "CVE-2026-0001 in openssl"),
        VmStatus("pers-ms-02", "hv-b", "running", V2, (), V2),
    ]
    lines = render_status(rows).splitlines()
    assert lines[1].split()[:5] == ["hv-a", "pers-ms-01", "running", V1, "REVOKED"]
    assert lines[2].split()[:5] == ["hv-b", "pers-ms-02", "running", V2, "-"]
    assert lines[3:] == [
        "",
        "VMs on a revoked template (promote another version, then fleet.rollout):",
        "  pers-ms-01 (hv-a) on 20261124T101500Z-1a2b3c4d5e6f: CVE-2026-0001 in openssl",
    ]
