"""`invoke fleet.restore --node=N --period=P [--to=NODE] [--overwrite=NODE]`: a verified
backup of a round-robin member put back onto a member, then its tables checked against the
checksums its manifest recorded from the source."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from imagefactory.fleet.backups import (
    BackupTarget,
    is_verified,
    load_manifest,
    table_checksums,
    user_tables,
)
from imagefactory.fleet.dbmember import DbMember
from imagefactory.fleet.hypervisor import FleetError
from imagefactory.store.api import StoreError


@dataclass(frozen=True)
class Restored:
    node: str
    period: str
    onto: str
    tables: int


def restore_backup(
    target: BackupTarget,
    group: str,
    members: Mapping[str, DbMember],
    node: str,
    period: str,
    to: str | None = None,
    overwrite: str | None = None,
) -> Restored:
    """Refuses an unverified backup, and a member that holds data unless `overwrite` names
    it (the data there would be lost); the restored tables must match the manifest."""
    onto = to or node
    if onto not in members:
        raise FleetError(f"--to={onto}: not a member of {group} ({', '.join(sorted(members))})")
    ok, why = is_verified(target, group, node, period)
    if not ok:
        raise FleetError(f"{group}/{node}/{period}: not restoring an unverified backup: {why}")
    member = members[onto]
    held = user_tables(member.sql)
    if held and overwrite != onto:
        raise FleetError(
            f"{onto} holds {len(held)} table(s) that a restore would replace "
            f"(hint: --overwrite={onto} if that is meant)"
        )
    manifest = load_manifest(target, group, node, period)
    key = target.key(group, node, period, "backup.xbstream")

    def chunks() -> Iterator[bytes]:
        try:
            yield from target.backend.iter_from(key, 0)
        except StoreError as exc:
            raise FleetError(f"{key}: {exc}") from None

    member.restore(chunks())
    restored = table_checksums(member.sql)
    if restored != manifest.checksums:
        differ = sorted(set(restored.items()) ^ set(manifest.checksums.items()))
        raise FleetError(f"{onto}: restored tables differ from the backup's source: {differ}")
    return Restored(node, period, onto, len(restored))
