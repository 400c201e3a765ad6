"""Kill a real publish / pull process mid-transfer; nothing half-done may become visible."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagefactory.store import layout
from imagefactory.store.backend import StoreBackend
from imagefactory.store.fs_backend import FsBackend
from imagefactory.store.listing import list_images
from imagefactory.store.publish import publish_image
from imagefactory.store.pull import pull_image
from imagefactory.store.s3_backend import S3Backend
from imagefactory.store.settings import ENV_ACCESS, ENV_SECRET
from tests.loopback_s3 import LoopbackS3
from tests.storekit import SigningKeys, make_sealed_image

pytestmark = pytest.mark.integration
MIB = 1024 * 1024
CHILD = Path(__file__).with_name("store_child.py")


def _store_args(backend: StoreBackend, keys: SigningKeys, image_dir: Path) -> dict[str, object]:
    common = {
        "signing_key": str(keys.private_key),
        "allowed_signers": str(keys.allowed_signers),
        "image_dir": str(image_dir),
    }
    if isinstance(backend, FsBackend):
        return {"kind": "fs", "path": str(backend.root), **common}
    assert isinstance(backend, S3Backend)
    s = backend.settings
    return {
        "kind": "s3",
        "endpoint": s.endpoint,
        "bucket": s.bucket,
        "secure": s.secure,
        "part_size": s.part_size,
        "workers": s.workers,
        **common,
    }


def _env(backend: StoreBackend, request: pytest.FixtureRequest) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    if isinstance(backend, S3Backend):
        server: LoopbackS3 = request.getfixturevalue("s3_server")
        env |= {ENV_ACCESS: server.access_key, ENV_SECRET: server.secret_key}
    return env


def _run_and_kill(args: dict[str, object], env: dict[str, str], at_percent: float) -> None:
    """Start the child, SIGKILL it once its progress passes `at_percent` (but before 100)."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), json.dumps(args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    for line in proc.stderr:
        if "%" in line and float(line.split("%")[0].split()[-1]) >= at_percent:
            break
        assert time.monotonic() < deadline, "child made no progress"
    else:
        proc.wait()
        pytest.fail(f"child ended before being killed: rc={proc.returncode}")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_killed_publish_leaves_nothing_visible(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    sealed = make_sealed_image(tmp_path / "sealed", size=40 * MIB, seed=30)
    args = {
        "op": "publish",
        "store": _store_args(backend, keys, tmp_path / "hv"),
        "sealed": str(sealed),
        "channel": "nightly",
        "throttle": 0.05,
    }
    _run_and_kill(args, _env(backend, request), at_percent=30)

    assert list_images(backend) == []
    assert backend.list_keys("channels/") == []
    leftovers = backend.abandoned_uploads("images/")
    assert leftovers, "the killed upload should have left an unfinished upload behind"
    with pytest.raises(Exception, match="no published images"):
        pull_image(
            backend, "persistence", tmp_path / "hv", keys.allowed_signers, show_progress=False
        )

    res = publish_image(backend, sealed, keys.private_key, channel="nightly", show_progress=False)
    assert res.bytes_uploaded == 40 * MIB
    assert backend.abandoned_uploads("images/") == []
    assert [r.version for r in list_images(backend)] == [res.version]


def test_killed_pull_resumes(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    sealed = make_sealed_image(tmp_path / "sealed", size=40 * MIB, seed=31)
    res = publish_image(backend, sealed, keys.private_key, show_progress=False)
    hv = tmp_path / "hv"
    args = {
        "op": "pull",
        "store": _store_args(backend, keys, hv),
        "family": "persistence",
        "version": res.version,
        "throttle": 0.05,
    }
    _run_and_kill(args, _env(backend, request), at_percent=30)

    part = hv / f".persistence-{res.version}.qcow2.part"
    partial = part.stat().st_size
    assert 0 < partial < 40 * MIB
    assert not (hv / layout.blob_name("persistence", res.version)).exists()

    got = pull_image(
        backend, "persistence", hv, keys.allowed_signers, version=res.version, show_progress=False
    )
    assert got.resumed_from == partial and got.bytes_downloaded == 40 * MIB - partial
    assert got.path.read_bytes() == (sealed / "persistence.qcow2").read_bytes()
    assert not part.exists()
