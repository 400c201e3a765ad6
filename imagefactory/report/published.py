"""Changelogs between published versions, from manifests the store read through its trust
chain (imagefactory.store.api: signatures checked against allowed_signers, a channel's
pointer signed for that very manifest), so a changelog never vouches for content nobody
signed. The reports a publish carries (changelog_reports) and `invoke images --diff`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from imagefactory.report.changelog import Changelog, diff_manifests, render_markdown, to_json
from imagefactory.report.packages import ManifestFieldError
from imagefactory.store import api
from imagefactory.store.settings import StoreSettings


def _diff(old: dict[str, Any] | None, new: dict[str, Any], where: str) -> Changelog:
    try:
        return diff_manifests(old, new)
    except ManifestFieldError as exc:
        raise exc.at(where) from None


def channel_changelog(
    backend: api.StoreBackend,
    family: str,
    channel: str,
    new_manifest: dict[str, Any],
    allowed_signers: Path,
) -> Changelog:
    """The changelog from the version `channel` points at now (verified pointer, verified
    manifest) to `new_manifest`; the "first version" changelog if the channel is unset.
    Call it before the channel is moved to the new version."""
    old = api.channel_manifest(backend, family, channel, allowed_signers)
    return _diff(old, new_manifest, f"{family} channel {channel!r}")


def changelog_for_publish(
    backend: api.StoreBackend,
    family: str,
    channel: str,
    new_manifest: dict[str, Any],
    allowed_signers: Path,
) -> tuple[str, bytes]:
    """(Markdown, JSON) of channel_changelog: what publishing `new_manifest` to `channel`
    changes for the channel's followers."""
    changelog = channel_changelog(backend, family, channel, new_manifest, allowed_signers)
    return render_markdown(changelog), to_json(changelog)


def diff_published(
    backend: api.StoreBackend,
    old_version: str,
    new_version: str,
    allowed_signers: Path,
    family: str | None = None,
) -> Changelog:
    """The changelog between two published versions of one family (the family both are
    published in, or `family`), both manifests verified against allowed_signers."""
    versions = (old_version, new_version)
    fam, old, new = api.version_manifests(backend, versions, allowed_signers, family)
    return _diff(old, new, f"{fam} {old_version}..{new_version}")


def changelog_reports(
    settings: StoreSettings, family: str, channel: str, manifest: Path
) -> dict[str, bytes]:
    """changelog.md and changelog.json of publishing `manifest` to `channel`: against the
    version the channel points at now."""
    text, data = changelog_for_publish(
        api.open_store(settings),
        family,
        channel,
        json.loads(manifest.read_text()),
        settings.allowed_signers.expanduser(),
    )
    return {"changelog.md": text.encode(), "changelog.json": data}


def images_diff(
    settings: StoreSettings, old_version: str, new_version: str, family: str | None = None
) -> str:
    """`invoke images --diff=A..B`: the Markdown changelog between two published versions of
    one family, both manifests verified against store.allowed_signers."""
    changelog = diff_published(
        api.open_store(settings),
        old_version,
        new_version,
        settings.allowed_signers.expanduser(),
        family,
    )
    return render_markdown(changelog).rstrip("\n")
