"""The rotation's systemd units (contrib/systemd/imagefactory-rotate.*), checked offline by
systemd-analyze verify, and their command line parsed by invoke against the real task."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.prereq import require_tool

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SERVICE = REPO / "contrib/systemd/imagefactory-rotate.service"
TIMER = REPO / "contrib/systemd/imagefactory-rotate.timer"
CHECKOUT = "/opt/imagefactory"


def verify(tmp: Path, service: str, timer: str) -> list[str]:
    """systemd-analyze verify's complaints about copies of the units, the checkout path
    pointed at a fake checkout in `tmp`."""
    tool = require_tool("systemd-analyze")
    fake = tmp / "checkout"
    (fake / ".venv/bin").mkdir(parents=True)
    (fake / ".venv/bin/invoke").write_text("#!/bin/sh\n")
    (fake / ".venv/bin/invoke").chmod(0o755)
    (tmp / SERVICE.name).write_text(service.replace(CHECKOUT, str(fake)))
    (tmp / TIMER.name).write_text(timer.replace(CHECKOUT, str(fake)))
    proc = subprocess.run(
        [tool, "verify", "--man=no", str(tmp / SERVICE.name), str(tmp / TIMER.name)],
        capture_output=True,
        text=True,
        env={"SYSTEMD_UNIT_PATH": f"{tmp}:", "PATH": "/usr/bin:/bin"},
    )
    ours = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "imagefactory-rotate" in ln]
    if proc.returncode != 0:
        ours.append(f"exit {proc.returncode}: {proc.stderr.strip()}")
    return ours


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd-analyze verify has nothing to say about the service and the timer."""
    assert verify(tmp_path, SERVICE.read_text(), TIMER.read_text()) == []


def test_verify_catches_a_broken_timer(tmp_path: Path) -> None:
    """A calendar spec systemd cannot read is reported (the check can fail)."""
    timer = TIMER.read_text().replace("OnCalendar=*-*-* *:05:00", "OnCalendar=at midnight")
    assert verify(tmp_path, SERVICE.read_text(), timer) != []


def test_service_command_uses_only_the_tasks_flags() -> None:
    """invoke parses the unit's `invoke fleet.rotate …` against the real task's flags."""
    line = next(ln for ln in SERVICE.read_text().splitlines() if ln.startswith("ExecStart="))
    argv = shlex.split(line.removeprefix("ExecStart="))[1:]
    assert argv[0] == "fleet.rotate"
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", *argv, "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "fleet.rotate [--options]" in proc.stdout
