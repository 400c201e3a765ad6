"""Changelogs between published versions, read from the store through the trust chain: a
manifest is compared only once its signature checks out against allowed_signers (and, for a
channel's current version, once the channel pointer's does and it was signed for that very
manifest), so a changelog never vouches for content nobody signed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from imagefactory.report.changelog import Changelog, diff_manifests, render_markdown, to_json
from imagefactory.report.packages import ManifestFieldError
from imagefactory.store import layout
from imagefactory.store.backend import StoreBackend, StoreError
from imagefactory.store.channels import read_signed_channel
from imagefactory.store.trust import trusted_manifest


def _verified(
    backend: StoreBackend, family: str, version: str, allowed_signers: Path
) -> tuple[dict[str, Any], bytes]:
    return trusted_manifest(backend, family, version, allowed_signers, "comparing")


def _diff(old: dict[str, Any] | None, new: dict[str, Any], where: str) -> Changelog:
    try:
        return diff_manifests(old, new)
    except ManifestFieldError as exc:
        raise exc.at(where) from None


def channel_changelog(
    backend: StoreBackend,
    family: str,
    channel: str,
    new_manifest: dict[str, Any],
    allowed_signers: Path,
) -> Changelog:
    """The changelog from the version `channel` points at now (verified pointer, verified
    manifest) to `new_manifest`; the "first version" changelog if the channel is unset.
    Call it before the channel is moved to the new version."""
    layout.check_name("family", family)
    layout.check_name("channel", channel)
    pointer = read_signed_channel(backend, family, channel, allowed_signers)
    old = None
    if pointer is not None:
        old, data = _verified(backend, family, pointer.version, allowed_signers)
        sha = hashlib.sha256(data).hexdigest()
        if sha != pointer.manifest_sha256:
            raise StoreError(
                f"{family} channel {channel!r}: the pointer was signed for a manifest.json "
                f"with sha256 {pointer.manifest_sha256}, but {pointer.version}'s has {sha}; "
                "not comparing against it (hint: promote the version again if the manifest "
                "was replaced on purpose)"
            )
    return _diff(old, new_manifest, f"{family} channel {channel!r}")


def changelog_for_publish(
    backend: StoreBackend,
    family: str,
    channel: str,
    new_manifest: dict[str, Any],
    allowed_signers: Path,
) -> tuple[str, bytes]:
    """(Markdown, JSON) of channel_changelog: what publishing `new_manifest` to `channel`
    changes for the channel's followers."""
    changelog = channel_changelog(backend, family, channel, new_manifest, allowed_signers)
    return render_markdown(changelog), to_json(changelog)


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


def diff_published(
    backend: StoreBackend,
    old_version: str,
    new_version: str,
    allowed_signers: Path,
    family: str | None = None,
) -> Changelog:
    """The changelog between two published versions of one family (see resolve_family),
    both manifests verified against allowed_signers."""
    layout.check_version(old_version)
    layout.check_version(new_version)
    fam = resolve_family(backend, (old_version, new_version), family)
    old, _ = _verified(backend, fam, old_version, allowed_signers)
    new, _ = _verified(backend, fam, new_version, allowed_signers)
    return _diff(old, new, f"{fam} {old_version}..{new_version}")
