"""SIGTERM and SIGHUP stop a build like Ctrl-C: nothing left running, no temp left, cache as it was.

The build runs as the CLI does (`python -m invoke build`, its own process). Its root layer is
put in the cache beforehand (a real qcow2); the next layer's Packer is a fake executable on
PATH that starts a long-lived child in its process group, standing in for the QEMU a real
Packer leaves behind when its parent disappears (a fake is fine here: this tests the stop).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagefactory.config import load_config
from imagefactory.engine import recipes
from imagefactory.engine.build import build_family
from imagefactory.engine.context import Artifacts, LayerBuild
from imagefactory.errors import BuildError
from imagefactory.util.tools import run
from tests.prereq import require_tools
from tests.standinkit import script_layer, standin_config, write_standin

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

CONFIG = standin_config(
    {"next": script_layer("next"), "seal": script_layer("seal", seal=True)},
    {"fa": ["base", "next", "seal"]},
    build={"accelerator": "tcg"},
)

FAKE_PACKER = """#!/bin/bash
if [ "$1" = version ]; then echo "Packer v1.6.6"; exit 0; fi
sleep 1000 &
echo $! > "{pidfile}"
echo "$(date +%s),,ui,say,==> qemu: Starting VM"
wait
"""


def fake_root(self: recipes.StandinRoot, run_: LayerBuild) -> str:
    image = run_.entry / "layer.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"])
    return image.name


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    require_tools("qemu-img", "ssh-keygen", "mmdebstrap")
    cfg = load_config(write_standin(tmp_path, CONFIG))
    monkeypatch.setattr(recipes.StandinRoot, "build", fake_root)
    # Only the root layer is built here: the fake's first layer fails fast without a packer.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "packer").write_text(FAKE_PACKER.split("sleep")[0] + "exit 3\n")
    (bin_dir / "packer").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with pytest.raises(BuildError, match="packer exited with status 3"):
        build_family(cfg, cfg.family("fa"), Artifacts(tmp_path / "artifacts"))
    assert len(Artifacts(tmp_path / "artifacts").cache.layer_keys()) == 1
    return tmp_path


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "locks" not in p.parts)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    return state != "Z"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_leaves_nothing_behind(project: Path, signum: signal.Signals) -> None:
    """The build stops its Packer and QEMU, removes its temp dirs, exits 128+N with one line."""
    cache = project / "artifacts" / "cache"
    before = listing(cache / "layers")
    pidfile = project / "qemu.pid"
    packer = project / "bin" / "packer"
    packer.write_text(FAKE_PACKER.replace("{pidfile}", str(pidfile)))
    env = {**os.environ, "TMPDIR": str(project / "systmp")}
    (project / "systmp").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "build", "--family=fa",
         f"--config={project / 'f.yaml'}"],
        cwd=project, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not pidfile.is_file() or not pidfile.read_text().strip():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the fake Packer never started"
        time.sleep(0.2)
    qemu = int(pidfile.read_text())
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, (out, err)
    assert err.strip().splitlines()[-1].startswith(f"stopped by {signum.name}:"), err
    assert "Traceback" not in err
    assert not alive(qemu)
    assert listing(cache / "layers") == before
    assert list((cache / "tmp").iterdir()) == []
    assert list((project / "systmp").iterdir()) == []
