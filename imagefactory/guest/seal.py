"""Sealing, all of it: the in-guest finish and the host-side half.

In the guest, the seal layer's scripts remove host keys, machine-id, logs and caches, and its
shutdown command runs FINALIZE_SCRIPT (from the layer's files), which deletes the build user
and its key and powers off. On the host, `seal_image` refuses the image if the build
credential can still be found in its bytes, then flattens it into one standalone qcow2 (no
backing file, so it no longer depends on the cache).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from imagefactory.choices import Compression
from imagefactory.errors import BuildError
from imagefactory.guest import offline
from imagefactory.guest.credential import BuildCredential
from imagefactory.util import progress
from imagefactory.util.tools import run

_SCAN_CHUNK = 16 * 1024 * 1024
FINALIZE_SCRIPT = "finalize-seal.sh"  # one of the seal layer's files: its shutdown command


def shutdown_command(files_target: str, build_user: str) -> str:
    """The seal layer's Packer shutdown: the finalize script instead of a plain poweroff."""
    return f"sudo /bin/bash {files_target}/{FINALIZE_SCRIPT} {build_user}"


def seal_image(
    overlay: Path,
    out: Path,
    *,
    credential: BuildCredential,
    compression: Compression,
    scratch: Path,
) -> None:
    """Scan `overlay` (with its backing chain) for the build credential, then flatten it."""
    progress.detail("scanning the sealed disk for the build credential and per-machine files")
    needles = {
        "the build credential's public half": credential.blob,
        "the build credential's public half (base64)": base64.b64encode(credential.blob),
    }
    with raw_copy(overlay, scratch) as raw:
        leaks = scan_raw(raw, needles)
        left = offline.leftovers(raw)
    if leaks:
        raise BuildError(f"sealed image still contains: {', '.join(leaks)}; not publishing it")
    if left:
        raise BuildError(
            "sealed image still holds per-machine files (read offline): "
            + "; ".join(left)
            + "; not publishing it"
        )
    progress.detail(f"flattening (compression: {compression})")
    flatten(overlay, out, compression=compression)


def image_info(path: Path) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(run(["qemu-img", "info", "--output=json", str(path)]).stdout)
    return info


def flatten(overlay: Path, out: Path, *, compression: Compression) -> None:
    """Write `overlay` and its whole backing chain as one qcow2 with no backing file."""
    opts = Compression(compression).qemu_img_args
    argv = ["qemu-img", "convert", "-O", "qcow2", *opts, str(overlay), str(out)]
    run(argv)
    if "backing-filename" in image_info(out):
        raise BuildError(f"{out} still has a backing file after flattening")


def find_secret(image: Path, needles: dict[str, bytes], scratch: Path) -> list[str]:
    """Names of the needles whose bytes occur anywhere in the image's guest-visible data."""
    with raw_copy(image, scratch) as raw:
        return scan_raw(raw, needles)


@contextmanager
def raw_copy(image: Path, scratch: Path) -> Iterator[Path]:
    """The guest-visible disk of `image` (its whole chain) as a sparse raw file, removed after."""
    raw = scratch / "scan.raw"
    run(["qemu-img", "convert", "-O", "raw", str(image), str(raw)])
    try:
        yield raw
    finally:
        raw.unlink(missing_ok=True)


def scan_raw(raw: Path, needles: dict[str, bytes]) -> list[str]:
    """Names of the needles whose bytes occur in the raw disk's data (holes skipped)."""
    found: set[str] = set()
    overlap = max(len(n) for n in needles.values()) - 1
    with raw.open("rb") as fh:
        for start, end in _data_extents(fh.fileno()):
            fh.seek(max(0, start - overlap))  # a needle may straddle an extent edge
            left = end - fh.tell()
            while left > 0:
                chunk = fh.read(min(_SCAN_CHUNK + overlap, left))
                found.update(name for name, n in needles.items() if n in chunk)
                left -= len(chunk)
                if left > 0:
                    fh.seek(-overlap, os.SEEK_CUR)
                    left += overlap
    return sorted(found)


def _data_extents(fd: int) -> list[tuple[int, int]]:
    """(start, end) of the non-hole parts of a sparse file: holes read as zeros, skip them."""
    size = os.fstat(fd).st_size
    extents, pos = [], 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole is left
            break
        end = os.lseek(fd, start, os.SEEK_HOLE)
        extents.append((start, end))
        pos = end
    return extents
