"""Finish a sealed layer on the host: flatten to one standalone qcow2 and check it for leaks.

The in-guest half of sealing (host keys, machine-id, build user, logs, caches) is done by the
seal layer's scripts; this half makes the image independent of the cache (no backing file)
and refuses to produce it if the build credential can still be found in its bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from imagefactory.errors import BuildError
from imagefactory.util.tools import run

_SCAN_CHUNK = 16 * 1024 * 1024


def image_info(path: Path) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(run(["qemu-img", "info", "--output=json", str(path)]).stdout)
    return info


def flatten(overlay: Path, out: Path, *, compression: str) -> None:
    """Write `overlay` and its whole backing chain as one qcow2 with no backing file."""
    opts = {"none": [], "zlib": ["-c"], "zstd": ["-c", "-o", "compression_type=zstd"]}
    argv = ["qemu-img", "convert", "-O", "qcow2", *opts[compression], str(overlay), str(out)]
    run(argv)
    if "backing-filename" in image_info(out):
        raise BuildError(f"{out} still has a backing file after flattening")


def find_secret(image: Path, needles: dict[str, bytes], scratch: Path) -> list[str]:
    """Names of the needles whose bytes occur anywhere in the image's guest-visible data."""
    raw = scratch / "scan.raw"
    run(["qemu-img", "convert", "-O", "raw", str(image), str(raw)])
    found: set[str] = set()
    overlap = max(len(n) for n in needles.values()) - 1
    try:
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
    finally:
        raw.unlink(missing_ok=True)
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
