"""Object names in the store, version strings, and the visibility rule readers apply.

images/<family>/<version>/<family>-<version>.qcow2    the template (immutable)
images/<family>/<version>/SHA256SUMS                  sha256sum -c compatible
images/<family>/<version>/<report files>              compliance / test reports
images/<family>/<version>/manifest.json.sig           OpenSSH signature (namespace imagefactory)
images/<family>/<version>/manifest.json               written last: makes the version visible
channels/<family>/<channel>.json                      signed pointer to a version, with history
channels/<family>/<channel>.json.sig                  OpenSSH signature of the pointer
revocations/<family>/<version>.json                   signed record: version revoked, and why
revocations/<family>/<version>.json.sig               OpenSSH signature of the record
sha256/<hex>                                          dedupe index: which blob has this content
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from imagefactory.store.backend import ObjectMissing, StoreBackend, StoreError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
VERSION_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{12}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
SIGNATURE_NAMESPACE = "imagefactory"


def check_name(kind: str, value: str) -> str:
    """Families and channels become object names and file names: keep them plain."""
    if not NAME_RE.match(value):
        raise StoreError(
            f"invalid {kind} name {value!r} "
            "(hint: lower-case letters, digits, '.', '_', '-'; start alphanumeric)"
        )
    return value


def check_version(value: str) -> str:
    if not VERSION_RE.match(value):
        raise StoreError(f"invalid version {value!r} (expected like 20261124T101500Z-1a2b3c4d5e6f)")
    return value


def derive_version(finished: datetime, sha256: str) -> str:
    """UTC build time then the first 12 hex of the image sha256: sorts by time as text."""
    stamp = finished.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{sha256[:12]}"


def actor() -> str:
    """user@host recorded as publisher / promoter."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def image_prefix(family: str, version: str) -> str:
    # Every image key is built here: a name that could leave its prefix never becomes a key.
    return f"images/{check_name('family', family)}/{check_version(version)}/"


def blob_name(family: str, version: str) -> str:
    return f"{family}-{version}.qcow2"


def blob_key(family: str, version: str) -> str:
    return image_prefix(family, version) + blob_name(family, version)


def manifest_key(family: str, version: str) -> str:
    return image_prefix(family, version) + "manifest.json"


def signature_key(family: str, version: str) -> str:
    return manifest_key(family, version) + ".sig"


def sums_key(family: str, version: str) -> str:
    return image_prefix(family, version) + "SHA256SUMS"


def channel_key(family: str, channel: str) -> str:
    return f"channels/{check_name('family', family)}/{check_name('channel', channel)}.json"


def channel_signature_key(family: str, channel: str) -> str:
    return channel_key(family, channel) + ".sig"


def revocation_key(family: str, version: str) -> str:
    return f"revocations/{check_name('family', family)}/{check_version(version)}.json"


def revocation_signature_key(family: str, version: str) -> str:
    return revocation_key(family, version) + ".sig"


def index_key(sha256: str) -> str:
    if not SHA256_RE.match(sha256):
        raise StoreError(f"invalid sha256 {sha256!r} (expected 64 lower-case hex digits)")
    return f"sha256/{sha256}"


@dataclass(frozen=True)
class ImageRecord:
    """A visible image: its published manifest (parsed) and where its blob is."""

    family: str
    version: str
    manifest: dict[str, Any]
    manifest_sha256: str  # of the manifest.json bytes, which channel pointers are signed for

    @property
    def sha256(self) -> str:
        return str(self.manifest["image"]["sha256"])

    @property
    def size(self) -> int:
        return int(self.manifest["image"]["size"])

    @property
    def blob(self) -> str:
        return blob_key(self.family, self.version)

    @property
    def score(self) -> float | None:
        comp = self.manifest.get("compliance")
        return float(comp["score"]) if isinstance(comp, dict) and "score" in comp else None


def examine(backend: StoreBackend, family: str, version: str) -> ImageRecord | str:
    """The image if a reader may use it (manifest parses, names this family and version, the
    blob has the stated size), else why not. The checksum itself is verified by pull, which
    reads every byte anyway."""
    try:
        key = manifest_key(family, version)
    except StoreError as exc:  # an object someone put under images/ by hand
        return f"not an image's place: {exc}"
    try:
        raw = backend.get_bytes(key)
    except ObjectMissing:
        return "no manifest.json"
    try:
        doc = json.loads(raw)
        size = int(doc["image"]["size"])
        named = (doc.get("family"), doc.get("version"))
    except ValueError:
        return "manifest.json does not parse (not JSON, or image.size is not a number)"
    except (KeyError, TypeError):
        return "manifest.json has no image.size"
    if named != (family, version):
        return f"manifest.json names family {named[0]!r} version {named[1]!r}"
    stored = backend.size(blob_key(family, version))
    if stored != size:
        found = "missing" if stored is None else f"{stored} bytes"
        return f"the blob is {found}, manifest.json says {size} bytes"
    return ImageRecord(family, version, doc, hashlib.sha256(raw).hexdigest())


def load_visible(backend: StoreBackend, family: str, version: str) -> ImageRecord | None:
    """The image if a reader may use it (see examine), else None."""
    found = examine(backend, family, version)
    return found if isinstance(found, ImageRecord) else None


def scan_versions(backend: StoreBackend, family: str | None = None) -> dict[str, dict[str, bool]]:
    """family -> version -> has manifest, from one listing (no per-object reads)."""
    prefix = f"images/{family}/" if family else "images/"
    found: dict[str, dict[str, bool]] = {}
    for key in backend.list_keys(prefix):
        parts = key.split("/")
        if len(parts) != 4:
            continue
        _, fam, ver, name = parts
        versions = found.setdefault(fam, {})
        versions[ver] = versions.get(ver, False) or name == "manifest.json"
    return found


def visible_images(backend: StoreBackend, family: str | None = None) -> list[ImageRecord]:
    """Every visible image, sorted by family then version (oldest first)."""
    return scan_images(backend, family)[0]


def scan_images(
    backend: StoreBackend, family: str | None = None
) -> tuple[list[ImageRecord], dict[tuple[str, str], str]]:
    """Every visible image (as visible_images), and every version whose manifest exists but
    cannot be used, with the reason: (family, version) -> why."""
    records: list[ImageRecord] = []
    unusable: dict[tuple[str, str], str] = {}
    for fam, versions in sorted(scan_versions(backend, family).items()):
        for ver, has_manifest in sorted(versions.items()):
            if not has_manifest:
                continue
            found = examine(backend, fam, ver)
            if isinstance(found, ImageRecord):
                records.append(found)
            else:
                unusable[(fam, ver)] = found
    return records, unusable
