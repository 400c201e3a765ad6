"""Retention of round-robin backups (`fleet.backups --prune [--apply]`): backups of the last
`backup_keep` periods are kept, and so is any backup of a period a member still holds (the
proof that lets that member be purged), however old."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from imagefactory.fleet.backups import BackupTarget
from imagefactory.fleet.rotation import RotationGroup, period_at, period_number

# Removed in this order: the record first, so a half-pruned backup never counts as verified.
PRUNED_NAMES = (
    "verified.json",
    "verified.json.sig",
    "backup.xbstream",
    "manifest.json",
    "manifest.json.sig",
)


def backups_to_prune(
    group: RotationGroup,
    backups: Iterable[tuple[str, str]],
    holds: Mapping[str, str],
    now: datetime,
) -> list[tuple[str, str]]:
    """(node, period) of the backups older than the group's keep window whose period no
    member still holds, oldest first."""
    current = period_number(group, period_at(group, now))
    return sorted(
        (node, period)
        for node, period in backups
        if current - period_number(group, period) > group.keep and holds.get(node) != period
    )


def prune(target: BackupTarget, group: str, doomed: Iterable[tuple[str, str]]) -> int:
    count = 0
    for node, period in doomed:
        for name in PRUNED_NAMES:
            target.backend.delete(target.key(group, node, period, name))
        count += 1
    return count
