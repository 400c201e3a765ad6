"""The sealed-image leak scan finds secret bytes anywhere in a qcow2 chain, holes skipped."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from imagefactory.guest.seal import _SCAN_CHUNK, find_secret, flatten, image_info
from tests.prereq import require_tool

pytestmark = pytest.mark.integration
NEEDLE = b"ssh-ed25519-BUILD-KEY-MATERIAL-0123456789"


def qcow2_with(tmp_path: Path, offsets: list[int], size: int = 256 << 20, filled: int = 0) -> Path:
    raw = tmp_path / "disk.raw"
    with raw.open("wb") as fh:
        fh.truncate(size)
        fh.write(b"\x5a" * filled)  # one long data extent: reads cross chunk boundaries
        for off in offsets:
            fh.seek(off)
            fh.write(NEEDLE)
    out = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(out)], check=True)
    raw.unlink()
    return out


@pytest.mark.parametrize("offset", [0, 5 << 20, _SCAN_CHUNK - 10, (200 << 20) + 4095])
def test_needle_is_found_wherever_it_is(tmp_path: Path, offset: int) -> None:
    require_tool("qemu-img")
    image = qcow2_with(tmp_path, [offset])
    assert find_secret(image, {"key": NEEDLE, "other": b"absent-bytes-xyz"}, tmp_path) == ["key"]


def test_needle_across_a_read_chunk_boundary(tmp_path: Path) -> None:
    require_tool("qemu-img")
    image = qcow2_with(tmp_path, [2 * _SCAN_CHUNK - 7], filled=3 * _SCAN_CHUNK)
    assert find_secret(image, {"key": NEEDLE}, tmp_path) == ["key"]


def test_clean_image_reports_nothing_and_leaves_no_scratch(tmp_path: Path) -> None:
    require_tool("qemu-img")
    image = qcow2_with(tmp_path, [])
    assert find_secret(image, {"key": NEEDLE}, tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk.qcow2"]


@pytest.mark.parametrize("compression", ["none", "zlib", "zstd"])
def test_flatten_drops_the_backing_file(tmp_path: Path, compression: str) -> None:
    require_tool("qemu-img")
    base = qcow2_with(tmp_path, [1 << 20])
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(overlay)],
        check=True,
    )
    out = tmp_path / "flat.qcow2"
    flatten(overlay, out, compression=compression)
    assert "backing-filename" in image_info(overlay)
    assert "backing-filename" not in image_info(out)
    assert find_secret(out, {"key": NEEDLE}, tmp_path) == ["key"]
