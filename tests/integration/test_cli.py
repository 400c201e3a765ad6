"""The invoke tasks as a user runs them: documented, thin, clear exit codes on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def invoke(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(REPO), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def test_list_documents_every_task() -> None:
    out = invoke("--list").stdout
    for name in ("build", "plan", "verify", "doctor"):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(name + " "))
        assert len(line.split()) > 2, f"task {name} has no docstring"


def test_unknown_family_exits_2_naming_known_ones() -> None:
    proc = invoke("plan", "--family=nope", "--config=standin.yaml")
    assert proc.returncode == 2
    assert "unknown family 'nope'" in proc.stderr and "standin-alpha" in proc.stderr


def test_malformed_yaml_exits_2_with_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nfamilies: [\n")
    proc = invoke("build", "--family=x", f"--config={bad}", cwd=tmp_path)
    assert proc.returncode == 2
    assert str(bad) in proc.stderr and "line" in proc.stderr
    assert not (tmp_path / "artifacts").exists()


def test_ol8_build_here_stops_at_the_dvd_and_points_at_standin(tmp_path: Path) -> None:
    """The README's main command without the OL8 DVD fails clearly and caches nothing.

    The DVD URL is pointed at a missing local file: tests send no traffic off this machine.
    """
    text = (REPO / "factory.yaml").read_text()
    url = next(ln.split("url: ", 1)[1] for ln in text.splitlines() if "url: " in ln)
    config = REPO / f".test-factory-{tmp_path.name}.yaml"  # beside factory.yaml: same paths
    config.write_text(text.replace(url, (tmp_path / "OracleLinux-R8-U10.iso").as_uri()))
    try:
        proc = invoke("build", "--family=persistence", f"--config={config}", cwd=tmp_path)
    finally:
        config.unlink()
    assert proc.returncode != 0
    assert "cannot download" in proc.stderr and "standin.yaml" in proc.stderr
    layers = tmp_path / "artifacts" / "cache" / "layers"
    assert not layers.exists() or list(layers.iterdir()) == []


def test_missing_packer_is_named_with_install_command(tmp_path: Path) -> None:
    """With packer absent from PATH, plan fails with the tool and the apt command."""
    import os

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("qemu-img", "qemu-system-x86_64", "mmdebstrap", "ssh-keygen", "git"):
        found = subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip()
        if found:
            (bin_dir / tool).symlink_to(found)
    env = {**os.environ, "PATH": str(bin_dir)}
    proc = subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), "plan",
                           "--family=standin-alpha", f"--config={REPO / 'standin.yaml'}"],
                          capture_output=True, text=True, cwd=tmp_path, env=env,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 1
    assert "required tool 'packer' was not found" in proc.stderr
    assert "apt-get install packer" in proc.stderr
