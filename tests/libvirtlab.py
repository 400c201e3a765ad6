"""Shared by the e2e modules on the real libvirtd: a new version of a sealed stand-in image
on `stable`, and measured figures shown in the run's output."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from imagefactory import commands
from imagefactory.store import api
from imagefactory.store.settings import StoreSettings
from imagefactory.util.fsutil import sha256_file
from tests.storekit import make_signing_keys


def published_standin(workspace: Path, work: Path) -> StoreSettings:
    """The session's stand-in persistence image (built once per session, cached after)
    published on `stable` of a directory store in `work`; that store's settings."""
    image = commands.build(
        workspace / "standin.yaml", "standin-alpha", workspace / "artifacts"
    ).image
    keys = make_signing_keys(work / "keys")
    settings = StoreSettings(
        kind="fs",
        path=work / "store",
        allowed_signers=keys.allowed_signers,
        image_dir=work / "pulled",
        signing_key=keys.private_key,
    )
    # Verification is the pipeline tests' business; the fleet needs the published image.
    api.publish(settings, image.parent, "stable", allow_unverified=True, show_progress=False)
    return settings


def republish(
    settings: StoreSettings, sealed: Path, work: Path, hours: int, family: str = "standin-alpha"
) -> str:
    """`sealed` published again as a new version of `family` on stable: same guest, other
    bytes (qemu-img convert with another cluster size), `hours` later."""
    out = work / f"sealed-{hours}"
    out.mkdir()
    manifest = json.loads((sealed / "manifest.json").read_text())
    image = out / f"{family}.qcow2"
    subprocess.run(
        [
            "qemu-img",
            "convert",
            "-c",
            "-O",
            "qcow2",
            "-o",
            "cluster_size=131072,compression_type=zstd",
            str(sealed / manifest["image"]["file"]),
            str(image),
        ],
        check=True,
    )
    manifest["family"] = family
    manifest["image"].update(file=image.name, sha256=sha256_file(image), size=image.stat().st_size)
    finished = datetime.fromisoformat(manifest["build"]["finished"]) + timedelta(hours=hours)
    manifest["build"]["finished"] = finished.isoformat()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return api.publish(settings, out, "stable", allow_unverified=True, show_progress=False).version


def show(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """A measured figure, shown in the run's output even when the test passes."""
    with capsys.disabled():
        print(f"\n[fleet e2e] {line}")
