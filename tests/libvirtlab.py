"""Shared by the e2e modules on the real libvirtd: a new version of a sealed stand-in image
on `stable`, and measured figures shown in the run's output."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from imagefactory.store import api
from imagefactory.store.settings import StoreSettings
from imagefactory.util.fsutil import sha256_file


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
