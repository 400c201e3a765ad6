"""fleet.apply writes the placement file once per run, before the first VM, so that a run
killed at any moment leaves no created VM unrecorded (simulated hypervisors)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from imagefactory.fleet import commands
from imagefactory.fleet.hypervisor import Connections
from tests.fleetkit import TemplateStore
from tests.integration.fleet.test_fleet_apply_simulated import fleet_file

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


class InodeAtEachLine(io.StringIO):
    """stdout that notes the placement file's inode whenever apply prints."""

    def __init__(self, placement: Path) -> None:
        super().__init__()
        self.placement = placement
        self.lines: list[tuple[int | None, str]] = []

    def write(self, text: str) -> int:
        inode = self.placement.stat().st_ino if self.placement.exists() else None
        self.lines.append((inode, text))
        return super().write(text)

    def inodes_from(self, marker: str) -> set[int | None]:
        """The inodes seen from the first line holding `marker` on."""
        first = next(i for i, (_, text) in enumerate(self.lines) if marker in text)
        return {inode for inode, _ in self.lines[first:]}


@pytest.fixture
def path(tmp_path: Path, template_store: TemplateStore) -> Path:
    template_store.publish("persistence", tmp_path / "sealed", seed=1)
    template_store.publish("workers", tmp_path / "sealed", seed=2)
    return fleet_file(tmp_path, template_store)


def test_the_placement_file_is_written_once_before_the_first_vm(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five VMs created: from the first hypervisor line on (templates are pulled before),
    the file is there with the same inode (one atomic write) at every line apply prints, and
    it records all five with their identity."""
    placement = path.parent / "fleet.placement.json"
    out = InodeAtEachLine(placement)
    monkeypatch.setattr(sys, "stdout", out)
    conns = Connections()
    try:
        report = commands.apply(path, conns=conns)
    finally:
        conns.close()
    assert report.count("created") == 5
    assert len(out.inodes_from("domain type")) == 1
    assert None not in out.inodes_from("domain type")
    nodes = json.loads(placement.read_text())["nodes"]
    assert sorted(nodes) == ["pers-ms-01", "pers-ms-02", "pers-ms-03", "wrk-app-01", "wrk-app-02"]
    assert all({"host", "ip", "mac", "uuid"} <= set(n) for n in nodes.values())


KILLED_APPLY = """
import sys
from pathlib import Path
from imagefactory.fleet import commands
commands.apply(Path(sys.argv[1]))
"""


def test_apply_killed_after_its_first_vm_has_recorded_it(path: Path, tmp_path: Path) -> None:
    """SIGKILL right after the first VM is created: every VM whose definition was written
    is in the placement file with its host and MAC."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'appcore' / 'src'}"}
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", KILLED_APPLY, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "created and started" in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    defined = sorted(p.parent.name for p in tmp_path.glob("hv-*/vms/*/domain.xml"))
    assert defined, "no VM was created before the kill"
    nodes = json.loads((tmp_path / "fleet.placement.json").read_text())["nodes"]
    for name in defined:
        host = next(tmp_path.glob(f"hv-*/vms/{name}")).parent.parent.name
        xml = (tmp_path / host / "vms" / name / "domain.xml").read_text()
        assert nodes[name]["host"] == host
        assert f'<mac address="{nodes[name]["mac"]}"' in xml
