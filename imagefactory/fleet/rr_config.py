"""fleet.yaml's round-robin fields (`rotation`, `timezone`, `backup`, `backup_keep`) on a
group: read into model.RoundRobin, checked beside the other groups' rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from imagefactory.errors import Problem
from imagefactory.fleet.model import Fleet, Group, RoundRobin, Topology
from imagefactory.fleet.rotation import Rotation, RotationGroup
from imagefactory.store.settings import store_settings_from_dict

RR_FIELDS = ("rotation", "timezone", "backup", "backup_keep")


def round_robin(doc: dict[str, Any], root: Path) -> RoundRobin | None:
    """The group's rotation, or None for a group without `rotation:` (shape already checked
    by the schema; meaning by round_robin_problems)."""
    if "rotation" not in doc:
        return None
    backup = None
    if "backup" in doc:
        backup, _ = store_settings_from_dict(doc["backup"], "", root)  # reported below
    return RoundRobin(
        Rotation(doc["rotation"]), doc.get("timezone", "UTC"), backup, doc.get("backup_keep")
    )


def round_robin_problems(fleet: Fleet) -> list[Problem]:
    file, out = str(fleet.path), []
    for group in fleet.groups.values():
        where = f".groups.{group.name}"
        rr = group.round_robin
        if rr is None:
            continue
        if group.topology is not Topology.INDEPENDENT:
            out.append(
                Problem(file, f"{where}.rotation", "a rotated group must be topology independent")
            )
        if group.count < 2:
            out.append(Problem(file, f"{where}.count", "a rotated group needs at least 2 members"))
        try:
            ZoneInfo(rr.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            out.append(
                Problem(file, f"{where}.timezone", f"unknown time zone {rr.timezone!r}", "e.g. UTC")
            )
    return out


def rotation_group(group: Group) -> RotationGroup:
    """The calendar view of a group that has `rotation:` (ValueError otherwise)."""
    if group.round_robin is None:
        raise ValueError(f"group {group.name} has no rotation")
    rr = group.round_robin
    return RotationGroup(group.name, group.node_names, rr.rotation, rr.timezone, rr.backup_keep)
