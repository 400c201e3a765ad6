"""Which round-robin backups retention removes (imagefactory/fleet/rr_prune.py)."""

from __future__ import annotations

from datetime import datetime

from imagefactory.fleet.rotation import RotationGroup
from imagefactory.fleet.rr_prune import backups_to_prune

GROUP = RotationGroup("rr", ("a", "b", "c"), "daily", backup_keep=3)
BACKUPS = [("a", "2026-01-02"), ("b", "2026-01-03"), ("c", "2026-01-04"), ("a", "2026-01-05")]


def test_keeps_the_last_keep_periods() -> None:
    """On 2026-01-07 with keep 3: 01-04 (3 periods back) stays; 01-02 and 01-03 go."""
    assert backups_to_prune(GROUP, BACKUPS, {}, datetime(2026, 1, 7, 1)) == [
        ("a", "2026-01-02"),
        ("b", "2026-01-03"),
    ]


def test_never_the_backup_of_a_period_a_member_holds() -> None:
    """b still holds 2026-01-03 (its switch was refused): its backup stays however old."""
    holds = {"b": "2026-01-03", "a": "2026-01-05"}
    assert backups_to_prune(GROUP, BACKUPS, holds, datetime(2026, 1, 7, 1)) == [("a", "2026-01-02")]


def test_default_keep_is_two_cycles() -> None:
    """Without backup_keep a 3-member group keeps 6 periods: nothing old enough on 01-08."""
    group = RotationGroup("rr", ("a", "b", "c"), "daily")
    assert backups_to_prune(group, BACKUPS, {}, datetime(2026, 1, 8, 1)) == []
