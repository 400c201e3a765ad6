"""Proof that a stored blob holds the bytes a manifest names, before anything relies on it.

A size check proves nothing about content: a damaged blob of the right size would be copied
by a dedupe or accepted by a re-publish and then signed for. Three proofs, cheapest first:

- the server's SHA-256 of the whole object, where its answer says it keeps one (an S3 copy
  asks for it; AWS and moto compute it): compared with the manifest's sha256 directly;
- the server's stored composite CRC32 (S3 keeps one per object uploaded with CRC32 part
  checksums; a changed object has another one or none) against a value computed here from
  the local file, or recorded in the signed manifest when there is no local file;
- else every byte re-hashed with sha256 (a local read for the directory store, a download for
  S3). `invoke store.verify --rehash` always does this: it also finds damage at rest that the
  server's own metadata would not show.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from imagefactory.store.backend import StoreBackend
from imagefactory.store.s3_multipart import crc32_b64, same_composite

_READ = 4 * 1024 * 1024


@dataclass(frozen=True)
class BlobFacts:
    """What a blob must be: from a signed manifest (or the sealed image being published)."""

    sha256: str
    size: int
    crc32: str | None = None  # composite CRC32 recorded at upload
    part_size: int | None = None  # the part size that CRC32 depends on

    @classmethod
    def of_manifest(cls, doc: dict[str, Any]) -> BlobFacts:
        found = doc.get("store")
        store: dict[str, Any] = found if isinstance(found, dict) else {}
        crc, part = store.get("blob_crc32"), store.get("part_size")
        return cls(
            str(doc["image"]["sha256"]).lower(),
            int(doc["image"]["size"]),
            crc if isinstance(crc, str) and crc else None,
            part if isinstance(part, int) and not isinstance(part, bool) and part > 0 else None,
        )


def local_crc32(path: Path, part_size: int) -> str:
    """The composite CRC32 S3 keeps for `path` uploaded in parts of `part_size`."""
    crcs = b""
    count = 0
    with path.open("rb") as fh:
        while (part := _read_part(fh, part_size)) is not None:
            crcs += part.to_bytes(4, "big")
            count += 1
    return f"{crc32_b64(zlib.crc32(crcs))}-{count}"


def _read_part(fh: BinaryIO, part_size: int) -> int | None:
    """CRC32 of the next part of `fh`, None at the end of the file."""
    crc, left, seen = 0, part_size, False
    while left and (chunk := fh.read(min(_READ, left))):
        crc = zlib.crc32(chunk, crc)
        left -= len(chunk)
        seen = True
    return crc if seen else None


def check_blob(
    backend: StoreBackend,
    key: str,
    facts: BlobFacts,
    *,
    local: Path | None = None,
    rehash: bool = False,
) -> tuple[str, str]:
    """("", how it was proven) when the blob holds the named bytes, else (problem, how)."""
    size = backend.size(key)
    if size is None:
        return "the blob is missing", "listing"
    if size != facts.size:
        return f"the blob has {size} bytes, the manifest says {facts.size}", "size"
    if not rehash and (whole := backend.stored_sha256(key)) is not None:
        if whole == facts.sha256:
            return "", "server SHA-256"
        return (
            f"the server's SHA-256 of the blob is {whole}, the manifest says {facts.sha256}",
            "server SHA-256",
        )
    if not rehash:
        stored = backend.stored_crc32(key)
        expected = facts.crc32
        if local is not None and facts.part_size is not None:
            expected = local_crc32(local, facts.part_size)
        if stored is not None and expected is not None:
            if same_composite(stored, expected):
                return "", "server CRC32"
            return (
                f"the server's checksum of the blob is CRC32 {stored}, its bytes should "
                f"give {expected}",
                "server CRC32",
            )
    digest = hashlib.sha256()
    for chunk in backend.iter_from(key, 0):
        digest.update(chunk)
    if digest.hexdigest() != facts.sha256:
        return (
            f"the blob's bytes hash to sha256 {digest.hexdigest()}, the manifest says "
            f"{facts.sha256}",
            "sha256 re-hash",
        )
    return "", "sha256 re-hash"
