"""Benchmark of the fleet's offline work on the production fleet.yaml (71 VMs, 6 hypervisors):
plan, render, `virt-xml-validate` and a validating define on libvirt's test driver.

Run from the repository root: `.venv/bin/python bench/bench_fleet.py`. Prints figures;
asserts nothing. The ops key of fleet.yaml lives on hypervisors, so a throwaway one is used.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imagefactory.fleet import commands  # noqa: E402
from tests.fleetkit import production_with  # noqa: E402


def main() -> None:
    import libvirt

    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        work = Path(tmp)
        fleet = production_with(work, 6)
        start = time.monotonic()
        commands.plan(fleet, fresh=True)
        t_plan = time.monotonic() - start
        start = time.monotonic()
        commands.render(fleet, work / "xml", "kvm")
        t_render = time.monotonic() - start
        files = sorted((work / "xml").glob("*/*.xml"))
        start = time.monotonic()
        bad = [
            f
            for f in files
            if subprocess.run(
                ["virt-xml-validate", str(f), "domain"], capture_output=True
            ).returncode
        ]
        t_validate = time.monotonic() - start
        conn = libvirt.open("test:///default")
        start = time.monotonic()
        for f in files:
            conn.defineXMLFlags(f.read_text(), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        t_define = time.monotonic() - start
        conn.close()
    print(f"domains: {len(files)} ({len(bad)} invalid)")
    print(f"plan (placement of 71 on 6 hosts): {t_plan:.3f} s")
    print(f"render 71 domain XML files:        {t_render:.3f} s")
    print(f"virt-xml-validate, all 71:         {t_validate:.2f} s")
    print(f"define --validate on test driver:  {t_define:.3f} s")
    print(f"render + both validations:         {t_render + t_validate + t_define:.2f} s")


if __name__ == "__main__":
    main()
