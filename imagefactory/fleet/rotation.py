"""The round-robin groups' calendar, pure: which member holds which period, which is active
at a time, and which periods ended since the last rotation (docs/fleet.md, Rotation).

A period is named by its local date in the group's time zone: "2026-12-07" (daily) or
"2026-12" (monthly). Member i (by name order) holds the periods whose number mod the member
count is i: daily, days since EPOCH; monthly, months since year 0.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

EPOCH = date(2000, 1, 1)  # fixed, so a member's slot never changes between runs


class Rotation(enum.StrEnum):
    DAILY = "daily"
    MONTHLY = "monthly"


@dataclass(frozen=True)
class RotationGroup:
    """A round-robin group as rotation needs it; members are kept in name order."""

    name: str
    members: tuple[str, ...]
    rotation: Rotation
    timezone: str = "UTC"
    backup_keep: int | None = None  # periods of backups kept; None: two cycles

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", tuple(sorted(self.members)))
        object.__setattr__(self, "rotation", Rotation(self.rotation))
        if len(self.members) < 2:
            raise ValueError(f"round-robin group {self.name}: needs at least 2 members")

    @property
    def keep(self) -> int:
        return self.backup_keep if self.backup_keep is not None else 2 * len(self.members)


def period_number(group: RotationGroup, period: str) -> int:
    if group.rotation is Rotation.DAILY:
        return (date.fromisoformat(period) - EPOCH).days
    year, month = (int(x) for x in period.split("-"))
    return year * 12 + month - 1


def period_name(group: RotationGroup, number: int) -> str:
    if group.rotation is Rotation.DAILY:
        return (EPOCH + timedelta(days=number)).isoformat()
    return f"{number // 12:04d}-{number % 12 + 1:02d}"


def _local(group: RotationGroup, at: datetime) -> datetime:
    tz = ZoneInfo(group.timezone)
    return at.replace(tzinfo=tz) if at.tzinfo is None else at.astimezone(tz)


def period_at(group: RotationGroup, at: datetime) -> str:
    """The period a time falls in (a naive time is read in the group's time zone)."""
    local = _local(group, at).date()
    if group.rotation is Rotation.DAILY:
        return local.isoformat()
    return f"{local.year:04d}-{local.month:02d}"


def member_of(group: RotationGroup, period: str) -> str:
    return group.members[period_number(group, period) % len(group.members)]


def active_member(group: RotationGroup, at: datetime) -> str:
    return member_of(group, period_at(group, at))


def shift(group: RotationGroup, period: str, by: int) -> str:
    return period_name(group, period_number(group, period) + by)


def period_start(group: RotationGroup, period: str) -> datetime:
    """Midnight (local) the period starts: the rotation time of the one before it."""
    day = date.fromisoformat(period if group.rotation is Rotation.DAILY else period + "-01")
    return datetime.combine(day, time(0), ZoneInfo(group.timezone))


def ended_periods(group: RotationGroup, last_done: str | None, now: datetime) -> list[str]:
    """Every period that ended after `last_done` (the last one rotated), oldest first; with
    no history, the one just ended. A clock that skipped periods yields each of them; one
    that went back yields none."""
    current = period_number(group, period_at(group, now))
    first = current - 1 if last_done is None else period_number(group, last_done) + 1
    return [period_name(group, n) for n in range(first, current)]


@dataclass(frozen=True)
class Switch:
    """The change at the end of `ended`: `outgoing` turns read-only, `incoming` (which
    holds `incoming_holds`, or nothing) is purged and takes the writes of the next period."""

    ended: str
    outgoing: str
    incoming: str
    incoming_holds: str | None


def plan_switch(group: RotationGroup, ended: str, holds: Mapping[str, str]) -> Switch:
    incoming = member_of(group, shift(group, ended, 1))
    return Switch(ended, member_of(group, ended), incoming, holds.get(incoming))


@dataclass(frozen=True)
class Verdict:
    purge: bool
    reason: str = field(default="")


def may_purge(
    switch: Switch,
    has_data: bool,
    verified: Callable[[str, str], tuple[bool, str]],
) -> Verdict:
    """Purge the incoming member only if what it holds has a verified backup, or it holds
    nothing; `verified(node, period)` answers (ok, why not)."""
    if switch.incoming_holds is None:
        if has_data:
            return Verdict(False, "it holds data of no period the rotation recorded")
        return Verdict(True, "it holds no data")
    ok, why = verified(switch.incoming, switch.incoming_holds)
    if not ok:
        return Verdict(False, f"period {switch.incoming_holds} has no verified backup: {why}")
    return Verdict(True, f"period {switch.incoming_holds} has a verified backup")
