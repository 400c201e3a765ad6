"""`invoke fleet.rotate` and `invoke fleet.backups`: the round-robin groups of a fleet file
(those with `rotation:`), their members over SSH, their backups in the store."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagefactory.errors import FactoryError
from imagefactory.fleet.backup_verify import Scratch
from imagefactory.fleet.backups import (
    BackupError,
    BackupTarget,
    last_verified_records,
    list_backups,
)
from imagefactory.fleet.config import load_fleet
from imagefactory.fleet.dbmember import DbMember, SshDbMember
from imagefactory.fleet.health import check_identity
from imagefactory.fleet.hypervisor import FleetError
from imagefactory.fleet.model import Fleet, Group
from imagefactory.fleet.nodes import plan_fleet
from imagefactory.fleet.rotation import active_member, member_of, period_at, period_start, shift
from imagefactory.fleet.rr_config import rotation_group
from imagefactory.fleet.rr_prune import backups_to_prune
from imagefactory.fleet.rr_prune import prune as prune_backups
from imagefactory.fleet.rr_restore import restore_backup
from imagefactory.fleet.rr_rotate import RotationBlocked, Rotator, locked_state
from imagefactory.store.api import StoreBackend, open_backend

MemberFactory = Callable[[Fleet, Group], Mapping[str, DbMember]]
TargetFactory = Callable[[Fleet, Group], BackupTarget]


def rotation_groups(fleet: Fleet, only: str | None) -> list[Group]:
    groups = [g for g in fleet.groups.values() if g.round_robin is not None]
    if only is not None:
        groups = [g for g in groups if g.name == only]
        if not groups:
            known = ", ".join(g.name for g in fleet.groups.values() if g.round_robin) or "none"
            raise FleetError(f"{fleet.path}: no rotated group {only!r} (rotated groups: {known})")
    return groups


def backup_target(fleet: Fleet, group: Group, backend: StoreBackend | None = None) -> BackupTarget:
    """The group's `backup:` store, else the fleet's `store:`, under backups/."""
    assert group.round_robin is not None
    settings = group.round_robin.backup or fleet.store
    if settings is None:
        raise FleetError(
            f"{fleet.path}: .groups.{group.name}.backup: no backup target "
            "(hint: set backup: on the group or the fleet's store:)"
        )
    chosen = backend if backend is not None else open_backend(settings)
    return BackupTarget(chosen, settings.signing_key, settings.allowed_signers)


def rotation_summary(fleet: Fleet, now: datetime | None = None) -> list[str]:
    """One line per rotated group: rotation, the calendar's active member, next rotation
    (read-only: no member, no store)."""
    at = now or datetime.now(UTC)
    lines = []
    for group in rotation_groups(fleet, None):
        rr = rotation_group(group)
        nxt = period_start(rr, shift(rr, period_at(rr, at), 1))
        lines.append(
            f"rotation {group.name}: {rr.rotation} ({rr.timezone}), active "
            f"{active_member(rr, at)}, next {nxt.isoformat()}, backups kept {rr.keep} "
            "(`invoke fleet.backups`)"
        )
    return lines


def rotation_status(
    fleet: Fleet, targets: TargetFactory = backup_target, now: datetime | None = None
) -> list[str]:
    """fleet.status's lines for each rotated group: the member taking the writes (the one
    after the last rotated period, or the calendar's before any rotation), the next
    rotation, and each member's last backup whose signed records say verified. A store that
    cannot be read is said, never fatal: status is what an operator runs when things are
    wrong."""
    at = now or datetime.now(UTC)
    lines = []
    for group in rotation_groups(fleet, None):
        rr = rotation_group(group)
        last = _last_rotated(fleet, group.name)
        calendar = active_member(rr, at)
        writes = member_of(rr, shift(rr, last, 1)) if last != "-" else calendar
        behind = "" if writes == calendar else f"; the calendar says {calendar}: fleet.rotate"
        nxt = period_start(rr, shift(rr, period_at(rr, at), 1))
        lines.append(
            f"rotation {group.name}: writes go to {writes} (last rotated period {last}{behind}), "
            f"next rotation {nxt.isoformat()}"
        )
        try:
            verified = last_verified_records(targets(fleet, group), group.name)
        except (BackupError, FactoryError) as exc:
            lines.append(f"  backups: not readable ({exc})")
            continue
        for member in rr.members:
            period = verified.get(member, "none")
            lines.append(f"  {member}: last backup recorded as verified: {period}")
        lines.append("  (records only: `invoke fleet.backups` re-hashes each backup)")
    return lines


def state_file(fleet: Fleet) -> Path:
    directory = fleet.rollout.state_dir or fleet.path.parent / "rollout"
    return directory / "rotation.json"


def _ssh_members(fleet: Fleet, group: Group) -> Mapping[str, DbMember]:
    check_identity(fleet)
    key = fleet.rollout.ssh_identity
    assert key is not None  # check_identity refused a fleet without one
    nodes = [n for n in plan_fleet(fleet).nodes.values() if n.group.name == group.name]
    return {n.name: SshDbMember(fleet, n, key) for n in nodes}


def rotate(
    fleet: Fleet,
    only: str | None = None,
    at: datetime | None = None,
    dry_run: bool = False,
    members: MemberFactory = _ssh_members,
    targets: TargetFactory = backup_target,
    scratch: Scratch | None = None,
    say: Callable[[str], None] = print,
) -> str:
    """Rotate every ended period of each rotated group; FleetError (exit 1) naming each
    group whose switch was refused, after the other groups were rotated."""
    now = at or datetime.now(UTC)
    refused: list[str] = []
    for group in rotation_groups(fleet, only):
        rot = Rotator(
            rotation_group(group),
            members(fleet, group),
            targets(fleet, group),
            scratch or Scratch(state_file(fleet).parent / "restore-test"),
            state_file(fleet),
            say,
        )
        try:
            rot.run(now, dry_run)
        except RotationBlocked as exc:
            refused.append(str(exc))
    if refused:
        raise FleetError("\n".join(refused))
    return "dry run: nothing changed" if dry_run else "rotation done"


def backups(
    fleet: Fleet,
    only: str | None = None,
    targets: TargetFactory = backup_target,
    at: datetime | None = None,
    prune: bool = False,
    apply: bool = False,
) -> str:
    """Each rotated group's active member and next rotation, then its backups with their
    verification, checked now (the object re-hashed against its signed manifest); with
    prune, the backups retention removes (with apply, removed)."""
    now = at or datetime.now(UTC)
    lines: list[str] = []
    for group in rotation_groups(fleet, only):
        rr = rotation_group(group)
        nxt = period_start(rr, shift(rr, period_at(rr, now), 1))
        last = _last_rotated(fleet, group.name)
        lines.append(
            f"{group.name}: calendar's active {active_member(rr, now)}, last rotated period "
            f"{last}, next rotation {nxt.isoformat()}"
        )
        try:
            listed = list_backups(targets(fleet, group), group.name)
        except BackupError as exc:
            raise FleetError(str(exc)) from None
        for b in listed:
            size = "-" if b.size is None else f"{b.size / 2**20:.1f} MiB"
            why = f"  ({b.why})" if b.why else ""
            lines.append(f"  {b.node}  {b.period}  {size}  {b.verified}{why}")
        if not listed:
            lines.append("  no backups")
        if prune:
            found = [(b.node, b.period) for b in listed]
            lines += _prune(fleet, group, found, now, apply, targets)
    return "\n".join(lines)


def _group_state(fleet: Fleet, group: str) -> dict[str, Any]:
    path = state_file(fleet)
    try:
        doc = json.loads(path.read_text()) if path.exists() else {}
        return dict(doc.get(group, {}))
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise FleetError(f"{path}: unreadable rotation state ({exc})") from None


def _last_rotated(fleet: Fleet, group: str) -> str:
    """The last period the state file says was switched ("-": none); a refused switch
    leaves it behind the calendar, and the member of that period still takes the writes."""
    return str(_group_state(fleet, group).get("last_done") or "-")


def _prune(
    fleet: Fleet,
    group: Group,
    found: list[tuple[str, str]],
    now: datetime,
    apply: bool,
    targets: TargetFactory,
) -> list[str]:
    """Under the rotation's lock: what a member holds cannot change meanwhile."""
    with locked_state(state_file(fleet)) as doc:
        holds = dict(doc.get(group.name, {}).get("holds", {}))
        doomed = backups_to_prune(rotation_group(group), found, holds, now)
        if apply:
            prune_backups(targets(fleet, group), group.name, doomed)
    verb = "removed" if apply else "would remove (dry run)"
    return [f"  {verb}: {node} {period}" for node, period in doomed]


def parse_at(text: str | None) -> datetime | None:
    """--at: an ISO time; without a zone it is read in each group's time zone."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise FleetError(f"--at={text}: not an ISO time (e.g. 2026-12-08T00:05)") from None


def rotate_task(fleet_file: Path, group: str | None, at: str | None, dry_run: bool) -> str:
    return rotate(load_fleet(fleet_file), group, parse_at(at), dry_run)


def backups_task(fleet_file: Path, group: str | None, prune: bool, apply: bool) -> str:
    return backups(load_fleet(fleet_file), group, prune=prune, apply=apply)


def restore(
    fleet: Fleet,
    node: str,
    period: str,
    to: str | None = None,
    overwrite: str | None = None,
    members: MemberFactory = _ssh_members,
    targets: TargetFactory = backup_target,
) -> str:
    """Put a verified backup of `node` back onto it (or onto `to`), tables checked after."""
    owner = [g for g in rotation_groups(fleet, None) if node in g.node_names]
    if not owner:
        raise FleetError(f"{fleet.path}: {node} is no member of a rotated group")
    group = owner[0]
    done = restore_backup(
        targets(fleet, group), group.name, members(fleet, group), node, period, to, overwrite
    )
    return (
        f"restored {done.node} {done.period} onto {done.onto}: "
        f"{done.tables} table(s) match the backup's source"
    )


def restore_task(
    fleet_file: Path, node: str, period: str, to: str | None, overwrite: str | None
) -> str:
    return restore(load_fleet(fleet_file), node, period, to, overwrite)
