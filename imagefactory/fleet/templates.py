"""Which template each family's VMs are created from: pulled and verified from the store
(the channel in the fleet file), or, for offline rendering, what this machine already has."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from imagefactory.errors import ConfigError, Problem
from imagefactory.fleet.hypervisor import FleetError
from imagefactory.fleet.model import Fleet
from imagefactory.store.settings import StoreSettings


@dataclass(frozen=True)
class TemplateRef:
    family: str
    version: str
    image: Path  # the verified local copy (pull's image_dir)
    sha256: str
    firmware: str = "bios"  # from the manifest: the VM boots the way the image was built


def _from_sidecar(family: str, version: str, image: Path) -> TemplateRef:
    sidecar = image.with_name(f"{family}-{version}.manifest.json")
    doc = json.loads(sidecar.read_text())
    return TemplateRef(family, version, image, doc["image"]["sha256"], doc.get("firmware", "bios"))


def _store(fleet: Fleet) -> StoreSettings:
    if fleet.store is None:
        raise ConfigError(
            [
                Problem(
                    str(fleet.path),
                    ".store",
                    "no store: section",
                    "name the store the hypervisors pull templates from",
                )
            ]
        )
    return fleet.store


def pull_templates(
    fleet: Fleet,
    families: Iterable[str],
    say: Callable[[str], None] = print,
    channel: str | None = None,
) -> dict[str, TemplateRef]:
    """Pull (signature and sha256 checked) the version the fleet's channel points at, once
    per family; an installed version is not downloaded again. A revoked version is refused
    before anything is pulled (deployable_versions)."""
    from imagefactory.store import api

    settings = _store(fleet)
    wanted = deployable_versions(fleet, families, channel)  # nothing downloaded if refused
    out = {}
    for family in sorted(set(families)):
        result = api.pull(settings, family, channel=channel or fleet.channel, show_progress=False)
        if result.version != wanted[family]:
            raise FleetError(
                f"template {family}: channel {channel or fleet.channel} moved from "
                f"{wanted[family]} to {result.version} while pulling; nothing deployed "
                "(run the command again)"
            )
        how = (
            "already here"
            if result.already_installed
            else (f"{result.bytes_downloaded / 2**20:.0f} MiB downloaded")
        )
        say(
            f"template {family}: channel {channel or fleet.channel} -> {result.version} "
            f"(signed by {result.signer}; {how})"
        )
        out[family] = _from_sidecar(family, result.version, result.path)
    return out


def local_templates(fleet: Fleet, families: Iterable[str]) -> dict[str, TemplateRef]:
    """The newest template of each family already pulled to this machine, if any: rendering
    needs no store and no daemon. A family never pulled renders with version `unpulled`."""
    image_dir = fleet.store.image_dir.expanduser() if fleet.store else None
    out = {}
    for family in sorted(set(families)):
        found = sorted(image_dir.glob(f"{family}-*.manifest.json")) if image_dir else []
        if found:
            version = found[-1].name[len(family) + 1 : -len(".manifest.json")]
            out[family] = _from_sidecar(
                family, version, found[-1].with_name(f"{family}-{version}.qcow2")
            )
        else:
            out[family] = TemplateRef(family, "unpulled", Path(f"{family}-unpulled.qcow2"), "")
    return out


def channel_versions(
    fleet: Fleet, families: Iterable[str], channel: str | None = None
) -> dict[str, str]:
    """The version each family's channel points at, its signed pointer checked; nothing is
    downloaded (dry runs, status, gc)."""
    from imagefactory.store import api

    return api.channel_versions(_store(fleet), families, channel or fleet.channel)


def deployable_versions(
    fleet: Fleet, families: Iterable[str], channel: str | None = None
) -> dict[str, str]:
    """channel_versions, refused (RevokedError, naming family, version and reason) if any is
    revoked or has a revocation record that does not verify: no VM is moved onto it."""
    from imagefactory.store import api

    versions = channel_versions(fleet, families, channel)
    api.check_not_revoked(
        _store(fleet),
        versions,
        f"deploying it (channel {channel or fleet.channel}; hint: promote another version)",
    )
    return versions


def revoked_versions(fleet: Fleet, families: Iterable[str]) -> dict[tuple[str, str], str]:
    """(family, version) -> why it is revoked, or that its revocation record does not
    verify (status marks VMs on either)."""
    from imagefactory.store import api

    settings = _store(fleet)
    out = {}
    for family in sorted(set(families)):
        for version, rec in api.revocations(settings, family).items():
            out[(family, version)] = (
                rec.reason if rec.verified else f"revocation record does not verify: {rec.problem}"
            )
    return out
