"""Fetch and verify build inputs (the OL8 DVD) before any VM runs.

Downloads go to a `.part` file and are hashed while written; only a file whose sha256
matches the configuration is renamed into place, so a bad or partial download is never used.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from imagefactory.errors import BuildError
from imagefactory.sources.model import IsoSource
from imagefactory.util import progress
from imagefactory.util.fsutil import CHUNK

FETCH_TIMEOUT_S = 30


def fetch_iso(source: IsoSource, store: Path, config_file: str) -> Path:
    """Path of the verified ISO in `store`, downloading it first if needed."""
    dest = store / f"{source.sha256}.iso"
    if dest.is_file():
        return dest
    store.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(".iso.part")
    where = f"{config_file}: .sources.{source.name}"
    progress.detail(f"fetching {source.url}")
    digest = hashlib.sha256()
    try:
        with (
            urllib.request.urlopen(source.url, timeout=FETCH_TIMEOUT_S) as resp,
            part.open("wb") as out,
        ):
            while chunk := resp.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise BuildError(
            f"{where}.url: cannot download {source.url}: {reason}. This host cannot reach the "
            "OL8 media; to see the whole pipeline here, build a stand-in family: "
            "invoke build --config=standin.yaml --family=standin-alpha"
        ) from None
    actual = digest.hexdigest()
    if actual != source.sha256:
        part.unlink(missing_ok=True)
        raise BuildError(
            f"{where}.sha256: checksum mismatch for {source.url}: "
            f"expected {source.sha256}, got {actual}; nothing was kept"
        )
    os.replace(part, dest)
    return dest
