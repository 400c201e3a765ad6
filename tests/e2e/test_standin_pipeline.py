"""The whole engine on the Debian stand-in, with real mmdebstrap, Packer and QEMU (TCG here).

Tests run in order and share one workspace: first builds, no-op rebuild, a script change,
a second family sharing layers, verification of the sealed image, then failures. The images
left here (alpha verified, both families on the changed script) are the ones the later
modules use: no other module builds them again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagefactory import commands
from imagefactory.config import load_config
from imagefactory.engine.build import plan_family
from imagefactory.engine.cache import LayerCache
from imagefactory.engine.context import Artifacts
from imagefactory.errors import BuildError
from imagefactory.guest.seal import image_info
from imagefactory.store import api
from imagefactory.store.s3_backend import S3Backend
from imagefactory.util.fsutil import sha256_file
from imagefactory.verify import verify_image
from tests.loopback_s3 import start_loopback_s3
from tests.storekit import make_signing_keys

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def cfg_path(ws: Path) -> Path:
    return ws / "standin.yaml"


def art(ws: Path) -> Path:
    return ws / "artifacts"


def cache_listing(ws: Path) -> list[str]:
    cache = LayerCache(art(ws) / "cache")
    layers = sorted(p.name for p in (cache.root / "layers").iterdir())
    leftovers = sorted(p.name for p in (cache.root / "tmp").iterdir())
    return layers + [f"tmp/{t}" for t in leftovers]


def qemu_processes(ws: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if str(ws) in line]


def test_first_build_chains_all_layers(workspace: Path) -> None:
    """A first build makes every layer (base maybe seeded locally), each on its parent."""
    result = commands.build(cfg_path(workspace), "standin-alpha", art(workspace))
    assert result.built[-5:] == ("common", "harden", "stack-alpha", "appcore-persistence", "seal")
    cache = LayerCache(art(workspace) / "cache")
    steps = result.plan.steps
    for parent, child in zip(steps[:-2], steps[1:-1], strict=True):
        backing = image_info(cache.image(child.key))["full-backing-filename"]
        assert Path(backing).resolve() == cache.image(parent.key).resolve()


def test_sealed_image_is_standalone_and_described(workspace: Path) -> None:
    """The sealed qcow2 has no backing file; the manifest gives its sha256 and every key."""
    out = art(workspace) / "images" / "standin-alpha"
    image, manifest = out / "standin-alpha.qcow2", json.loads((out / "manifest.json").read_text())
    assert "backing-filename" not in image_info(image)
    assert manifest["image"]["sha256"] == sha256_file(image)
    assert manifest["image"]["size"] == image.stat().st_size
    cfg = load_config(cfg_path(workspace))
    plan = plan_family(cfg, cfg.family("standin-alpha"), Artifacts(art(workspace)))
    assert [layer["key"] for layer in manifest["layers"]] == [s.key for s in plan.steps]
    assert set(manifest["tools"]) == {"packer", "qemu-img", "qemu-system-x86_64"}
    assert "revision" in manifest["git"] and manifest["build"]["finished"]


def test_second_build_is_a_noop(workspace: Path) -> None:
    """Building an unchanged family builds nothing and keeps the same image."""
    before = sha256_file(art(workspace) / "images/standin-alpha/standin-alpha.qcow2")
    result = commands.build(cfg_path(workspace), "standin-alpha", art(workspace))
    assert result.built == ()
    assert sha256_file(result.image) == before


def test_script_change_rebuilds_only_downstream(workspace: Path) -> None:
    """Changing the stack script rebuilds stack-alpha and the layers above; the plan says why."""
    script = workspace / "standin/scripts/stack/10-install-service.sh"
    script.write_text(script.read_text() + 'echo "stack layer revised"\n')
    text = commands.plan(cfg_path(workspace), "standin-alpha", art(workspace))
    assert "standin/scripts/stack/10-install-service.sh changed" in text
    assert "parent layer stack-alpha changed" in text
    result = commands.build(cfg_path(workspace), "standin-alpha", art(workspace))
    assert result.built == ("stack-alpha", "appcore-persistence", "seal")


def test_second_family_reuses_shared_layers(workspace: Path) -> None:
    """Both families in one (parallel) build: standin-beta builds only its own layers on top of
    the shared ones, standin-alpha nothing."""
    alpha, beta = commands.build_families(
        cfg_path(workspace), ["standin-alpha", "standin-beta"], art(workspace)
    )
    assert (alpha.built, beta.built) == ((), ("stack-beta", "appcore-workers", "seal"))
    text = commands.plan(cfg_path(workspace), "standin-alpha", art(workspace))
    assert "0 to build" in text


def test_sealed_image_passes_its_specs(workspace: Path) -> None:
    """Booted with a fresh login key, the sealed image passes the seal, family and CIS specs;
    the compliance scan of the same boot reaches the manifest with its ARF beside it."""
    out = art(workspace) / "images" / "standin-alpha"
    cfg = load_config(cfg_path(workspace))
    family = cfg.families["standin-alpha"]
    result = verify_image(
        out / "standin-alpha.qcow2",
        out / "manifest.json",
        family.specs,
        art(workspace) / "reports",
        accelerator="tcg",
        label="standin-alpha",
        scan=family.compliance,
    )
    assert result.passed, f"specs failed, see {result.report}"
    assert result.tests >= 10
    manifest = json.loads((out / "manifest.json").read_text())
    recorded = manifest["verification"]
    assert recorded["passed"] is True and recorded["tests"] == result.tests
    # The guest's package list, read in the same boot: sorted, counted and hashed.
    packages = manifest["packages"]
    assert isinstance(packages, list) and packages and packages == sorted(packages)
    assert any(p.startswith("openssh-server=") and p.endswith(" amd64") for p in packages)
    assert manifest["packages_format"] == "dpkg" and manifest["packages_count"] == len(packages)
    listing = "".join(f"{p}\n" for p in packages).encode()
    assert manifest["packages_sha256"] == hashlib.sha256(listing).hexdigest()
    compliance = manifest["compliance"]
    assert compliance["profile"] == "xccdf_org.imagefactory_profile_cis_server_l1_ol8"
    assert isinstance(compliance["score"], float)
    assert compliance["score_maximum"] == 100.0
    counts = compliance["counts"]
    # The OL8 tailoring selects 204 rules; on the Debian guest most are evaluated anyway.
    assert all(isinstance(n, int) for n in counts.values()) and sum(counts.values()) >= 200
    assert compliance["gate"] is False
    assert (out / compliance["arf"]).stat().st_size > 0
    assert (out / compliance["report"]).is_file()


def test_verified_image_publishes_to_s3_and_pulls(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verified image goes to a real S3 server (minio-py), signed; a pull verifies it."""
    out = art(workspace) / "images" / "standin-alpha"
    server = start_loopback_s3(art(workspace) / "logs" / "s3.log")
    try:
        keys = make_signing_keys(workspace / "signing")
        monkeypatch.setenv("IMAGEFACTORY_S3_ACCESS_KEY", server.access_key)
        monkeypatch.setenv("IMAGEFACTORY_S3_SECRET_KEY", server.secret_key)
        settings = server.settings(
            "images",
            signing_key=keys.private_key,
            allowed_signers=keys.allowed_signers,
            image_dir=workspace / "hypervisor",
        )
        S3Backend(settings, server.credentials()).client.make_bucket("images")
        published = api.publish(settings, out, channel="stable", show_progress=False)
        assert published.version
        pulled = api.pull(settings, "standin-alpha", channel="stable", show_progress=False)
        assert pulled.path.stat().st_mode & 0o222 == 0  # installed read-only
        manifest = json.loads((out / "manifest.json").read_text())
        assert sha256_file(pulled.path) == manifest["image"]["sha256"]
        assert "backing-filename" not in image_info(pulled.path)
    finally:
        server.stop()


def _broken_config(ws: Path, script_body: str, ssh_timeout: str = "3m") -> Path:
    script = ws / "standin/scripts/broken/10-fail-on-purpose.sh"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text("#!/bin/bash\nset -euo pipefail\n" + script_body)
    text = re.sub(
        r"ssh_timeout: \S+", f"ssh_timeout: {ssh_timeout}", cfg_path(ws).read_text(), count=1
    )
    text = text.replace(
        "families:\n", "families:\n  standin-broken:\n    layers: [base, common, broken, seal]\n", 1
    )
    text = text.replace(
        "layers:\n  base:",
        "layers:\n  broken:\n    scripts: [standin/scripts/broken/10-fail-on-purpose.sh]\n  base:",
        1,
    )
    path = ws / "broken.yaml"
    path.write_text(text)
    return path


def test_failing_script_leaves_cache_unchanged(workspace: Path) -> None:
    """A layer script exiting non-zero fails the build clearly; cache and processes are clean."""
    before = cache_listing(workspace)
    config = _broken_config(workspace, 'echo "about to fail"; exit 3\n')
    with pytest.raises(BuildError, match="provisioner script of this layer failed") as info:
        commands.build(config, "standin-broken", art(workspace))
    assert "about to fail" in str(info.value)
    assert cache_listing(workspace) == before
    assert qemu_processes(workspace) == []


def test_no_ssh_within_timeout_is_clear(workspace: Path) -> None:
    """An SSH timeout names the setting and the guest console log, and changes nothing."""
    before = cache_listing(workspace)
    config = _broken_config(workspace, "echo unreachable\n", ssh_timeout="3s")
    with pytest.raises(BuildError, match=r"no SSH connection .* ssh_timeout=3s.*serial\.log"):
        commands.build(config, "standin-broken", art(workspace))
    assert cache_listing(workspace) == before
    assert qemu_processes(workspace) == []


def test_ctrl_c_leaves_no_partial_entry_or_qemu(workspace: Path) -> None:
    """SIGINT during a layer build exits 130, removes the temp build and stops QEMU."""
    before = cache_listing(workspace)
    config = _broken_config(workspace, "sleep 600\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "invoke",
            "-r",
            str(REPO),
            "build",
            "--family=standin-broken",
            f"--config={config}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=workspace,
        # A runner that starts the suite as a background job leaves SIGINT ignored, and the
        # child would inherit that (Python then never raises KeyboardInterrupt): give the
        # build the Ctrl-C of a terminal, which is what this test is about.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 300
    for line in proc.stdout:
        if "Provisioning with shell script" in line and "fail-on-purpose" in line:
            break
        assert time.monotonic() < deadline, "the broken layer never started provisioning"
    assert qemu_processes(workspace), "QEMU should be running mid-build"
    proc.send_signal(signal.SIGINT)
    try:
        rest = proc.communicate(timeout=120)[0]
    except subprocess.TimeoutExpired:
        proc.kill()  # Packer has its own session: stop its QEMU too, then fail loudly
        for line in qemu_processes(workspace):
            os.kill(int(line.split()[0]), signal.SIGKILL)
        pytest.fail("the build did not stop within 120 s of SIGINT")
    assert proc.returncode == 130, rest
    assert "interrupted" in rest
    assert cache_listing(workspace) == before
    assert qemu_processes(workspace) == []
