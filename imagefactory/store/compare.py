"""The manifests a changelog compares, read through the trust chain: the one a channel points
at now (pointer and manifest signatures checked, and the pointer signed for that very
manifest), and two published versions of one family. imagefactory.report.published turns
them into changelogs; a changelog never vouches for content nobody signed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from imagefactory.store import layout
from imagefactory.store.backend import StoreBackend, StoreError
from imagefactory.store.channels import read_signed_channel
from imagefactory.store.trust import trusted_manifest

Manifest = dict[str, Any]


def _verified(backend: StoreBackend, family: str, version: str, allowed_signers: Path) -> Manifest:
    return trusted_manifest(backend, family, version, allowed_signers, "comparing")[0]


def channel_manifest(
    backend: StoreBackend, family: str, channel: str, allowed_signers: Path
) -> Manifest | None:
    """The manifest `channel` points at now (verified pointer, verified manifest); None if
    the channel is unset."""
    layout.check_name("family", family)
    layout.check_name("channel", channel)
    pointer = read_signed_channel(backend, family, channel, allowed_signers)
    if pointer is None:
        return None
    old, data = trusted_manifest(backend, family, pointer.version, allowed_signers, "comparing")
    sha = hashlib.sha256(data).hexdigest()
    if sha != pointer.manifest_sha256:
        raise StoreError(
            f"{family} channel {channel!r}: the pointer was signed for a manifest.json "
            f"with sha256 {pointer.manifest_sha256}, but {pointer.version}'s has {sha}; "
            "not comparing against it (hint: promote the version again if the manifest "
            "was replaced on purpose)"
        )
    return old


def resolve_family(backend: StoreBackend, versions: tuple[str, str], family: str | None) -> str:
    """The family both versions are published in: `family` if given (and it holds both),
    else the only family that holds both; a clear StoreError otherwise."""
    where = backend.describe()
    found = layout.scan_versions(backend, layout.check_name("family", family) if family else None)
    if family is not None:
        have = found.get(family, {})
        missing = [v for v in dict.fromkeys(versions) if not have.get(v)]
        if missing:
            raise StoreError(f"{where}: {family} has no published version {', '.join(missing)}")
        return family
    holders = {v: {f for f, vs in found.items() if vs.get(v)} for v in versions}
    for version, families in holders.items():
        if not families:
            raise StoreError(f"{where}: version {version} is not published in any family")
    common = holders[versions[0]] & holders[versions[1]]
    if len(common) == 1:
        return common.pop()
    if not common:
        raise StoreError(
            f"{where}: {versions[0]} is a version of {', '.join(sorted(holders[versions[0]]))} "
            f"but {versions[1]} of {', '.join(sorted(holders[versions[1]]))}: "
            "a changelog compares two versions of one family"
        )
    raise StoreError(
        f"{where}: both versions are published in families {', '.join(sorted(common))}; "
        "the family is ambiguous (hint: give --family=NAME)"
    )


def version_manifests(
    backend: StoreBackend, versions: tuple[str, str], allowed_signers: Path, family: str | None
) -> tuple[str, Manifest, Manifest]:
    """(family, old manifest, new manifest) of two published versions of one family (see
    resolve_family), both verified against allowed_signers."""
    for version in versions:
        layout.check_version(version)
    fam = resolve_family(backend, versions, family)
    old = _verified(backend, fam, versions[0], allowed_signers)
    return fam, old, _verified(backend, fam, versions[1], allowed_signers)
