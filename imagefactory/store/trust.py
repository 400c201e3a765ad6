"""Manifests are trusted only once their signature checks out against allowed_signers.

Everything that acts on a manifest's content (pull installs it, promote signs a pointer to
it, images shows its score, store.verify vouches for it) reads it through here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from imagefactory.store import layout
from imagefactory.store.backend import ObjectMissing, StoreBackend, StoreError
from imagefactory.store.signing import SignatureError, verify_bytes


def fetch_verified_manifest(
    backend: StoreBackend, family: str, version: str, allowed_signers: Path
) -> tuple[dict[str, Any], bytes, str]:
    """Manifest bytes checked against allowed_signers before being parsed or trusted."""
    what = f"{family} {version} manifest"
    try:
        data = backend.get_bytes(layout.manifest_key(family, version))
    except ObjectMissing:
        raise StoreError(
            f"{backend.describe()}: {family} {version} is not published (no manifest)"
        ) from None
    try:
        sig = backend.get_bytes(layout.signature_key(family, version))
    except ObjectMissing:
        raise SignatureError(f"{what}: signature file is missing; refusing it") from None
    signer = verify_bytes(data, sig, allowed_signers, what)
    try:
        doc = json.loads(data)
        ok = (
            doc["family"] == family
            and doc["version"] == version
            and isinstance(doc["image"]["size"], int)
            and len(doc["image"]["sha256"]) == 64
        )
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise StoreError(f"{what}: signed, but does not describe {family} {version}")
    return doc, data, signer


def trusted_manifest(
    backend: StoreBackend, family: str, version: str, allowed_signers: Path, refusing: str
) -> tuple[dict[str, Any], bytes]:
    """fetch_verified_manifest for an action that must not go on with an untrusted manifest:
    a signature failure names the action refused (`refusing`, e.g. "promoting") and where
    the repair is explained."""
    try:
        doc, data, _ = fetch_verified_manifest(backend, family, version, allowed_signers)
    except SignatureError as exc:
        raise SignatureError(
            f"{exc}; not {refusing} it (hint: `invoke store.verify --family={family}` "
            "explains the repair)"
        ) from None
    return doc, data


def manifest_problems(
    backend: StoreBackend, records: list[layout.ImageRecord], allowed_signers: Path
) -> dict[tuple[str, str], str]:
    """(family, version) -> why its manifest cannot be trusted, for each record that fails."""
    out: dict[tuple[str, str], str] = {}
    for rec in records:
        try:
            _, data, _ = fetch_verified_manifest(backend, rec.family, rec.version, allowed_signers)
        except (SignatureError, StoreError) as exc:
            out[(rec.family, rec.version)] = str(exc)
            continue
        if hashlib.sha256(data).hexdigest() != rec.manifest_sha256:
            out[(rec.family, rec.version)] = "manifest changed while it was being listed"
    return out
