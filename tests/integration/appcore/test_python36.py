"""The real OL8 interpreter version: the whole apply flow runs under Python 3.6."""

import glob
import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from appcore_testkit import (
    APPCORE_DIR,
    add_smbios,
    attach_disk,
    make_image,
    make_root,
)

from tests.prereq import require_tool

pytestmark = pytest.mark.integration

# Runs inside Python 3.6: records systemd commands, runs blkid/wipefs/mkfs for real.
SCRIPT = textwrap.dedent("""
    import sys
    from appcore.cli import main
    from appcore.runner import Result, Runner

    class Recorder(Runner):
        def run(self, argv, check=True):
            if argv[0] in ("systemctl", "udevadm", "modprobe"):
                self.history.append(list(argv))
                rc = 3 if argv[1:2] in (["is-active"], ["is-enabled"]) else 0
                return Result(list(argv), rc, "", "")
            return Runner.run(self, argv, check)

    sys.exit(main(["--root", sys.argv[1], "apply", "--disk-wait", "0"], runner=Recorder()))
""")


def python36() -> str:
    """APPCORE_PYTHON36, a pyenv 3.6 build (not its shim), or python3.6 on PATH."""
    builds = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.6*/bin/python3.6")))
    found = os.environ.get("APPCORE_PYTHON36") or (builds[0] if builds else None)
    return found or require_tool("python3.6")


def test_apply_runs_under_python36(tmp_path: Path) -> None:
    """Under Python 3.6, apply formats a blank DATA_MS and configures REDPANDA."""
    exe = python36()
    version = subprocess.run(
        [exe, "--version"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ).stdout
    assert version.startswith("Python 3.6")
    require_tool("mkfs.xfs")
    root = make_root(tmp_path, services=["redpanda.service"])
    add_smbios(
        root,
        [
            "appcore:role=REDPANDA",
            "appcore:ip=10.20.0.21",
            "appcore:peers=10.20.0.21,10.20.0.22,10.20.0.23",
        ],
    )
    attach_disk(root, "DATA_MS", make_image(tmp_path / "ms.img", "blank"))
    env = dict(os.environ, PYTHONPATH=str(APPCORE_DIR / "src"))
    result = subprocess.run(
        [exe, "-s", "-B", "-c", SCRIPT, str(root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert result.returncode == 0, result.stdout
    state = json.loads((root / "run/appcore/state.json").read_text())
    assert (state["status"], state["role"], state["disks"][0]["fstype"]) == (
        "configured",
        "REDPANDA",
        "xfs",
    )
    rendered = (root / "data/ms/conf/appcore-role.yaml").read_text()
    assert "data_directory: /data/ms/data" in rendered
    assert (
        'seed_servers: [{host: {address: "10.20.0.21", port: 33145}}, '
        '{host: {address: "10.20.0.22", port: 33145}}, '
        '{host: {address: "10.20.0.23", port: 33145}}]'
    ) in rendered
