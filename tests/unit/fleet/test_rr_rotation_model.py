"""The round-robin calendar and the purge decision, pure (imagefactory/fleet/rotation.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from imagefactory.fleet.rotation import (
    RotationGroup,
    Switch,
    active_member,
    ended_periods,
    may_purge,
    period_start,
    plan_switch,
)

DAILY = RotationGroup("rr7d", tuple(f"n{i}" for i in range(7, 0, -1)), "daily", "Europe/Berlin")
MONTHLY = RotationGroup("rr3m", ("m3", "m1", "m2"), "monthly", "UTC")


def test_members_in_name_order() -> None:
    """Members are slotted by name order, whatever order fleet.yaml lists them in."""
    assert MONTHLY.members == ("m1", "m2", "m3")


def test_daily_slot_is_day_number_mod_count() -> None:
    """Daily: 1 March 2026 is day 9556 since 2000-01-01, 9556 mod 7 = 1: the second member."""
    days = [active_member(DAILY, datetime(2026, 3, d, 12)) for d in range(1, 9)]
    assert days == ["n2", "n3", "n4", "n5", "n6", "n7", "n1", "n2"]


def test_daily_uses_the_group_time_zone() -> None:
    """23:30 UTC on 1 March is already 2 March in Berlin."""
    assert active_member(DAILY, datetime(2026, 3, 1, 23, 30, tzinfo=UTC)) == "n3"


def test_monthly_slot_is_month_number_mod_count() -> None:
    """Monthly: January 2026 is month 24312, 24312 mod 3 = 0: m1, then m2, m3, m1."""
    months = [active_member(MONTHLY, datetime(2026, m, 15)) for m in range(1, 5)]
    assert months == ["m1", "m2", "m3", "m1"]


def test_ended_periods_without_history_is_the_last_one() -> None:
    """A first run rotates only the period just ended."""
    assert ended_periods(DAILY, None, datetime(2026, 3, 2, 0, 1)) == ["2026-03-01"]


def test_ended_periods_each_skipped_day_in_order() -> None:
    """A clock that skipped two days yields each ended day, oldest first."""
    now = datetime(2026, 3, 5, 0, 1)
    assert ended_periods(DAILY, "2026-03-01", now) == ["2026-03-02", "2026-03-03", "2026-03-04"]


def test_ended_periods_clock_going_back_yields_nothing() -> None:
    """A clock behind the last rotation rotates nothing."""
    assert ended_periods(DAILY, "2026-03-04", datetime(2026, 3, 2, 12)) == []


def test_ended_months_across_a_year() -> None:
    """Monthly periods run over the turn of the year."""
    assert ended_periods(MONTHLY, "2025-11", datetime(2026, 2, 1, 0, 5)) == ["2025-12", "2026-01"]


def test_period_start_is_local_midnight() -> None:
    """The next rotation of a Berlin group is midnight Berlin time (23:00 UTC in winter)."""
    start = period_start(DAILY, "2026-01-10")
    assert start.astimezone(UTC).isoformat() == "2026-01-09T23:00:00+00:00"


def test_switch_names_incoming_and_what_it_holds() -> None:
    """After month 2026-01 (m1) comes m2, which holds 2025-11."""
    assert plan_switch(MONTHLY, "2026-01", {"m2": "2025-11"}) == Switch(
        "2026-01", "m1", "m2", "2025-11"
    )


def test_no_purge_without_verified_backup() -> None:
    """An unverified period blocks the purge and says why."""
    switch = Switch("2026-01", "m2", "m3", "2025-11")
    verdict = may_purge(switch, True, lambda node, period: (False, "no manifest"))
    assert (verdict.purge, verdict.reason) == (
        False,
        "period 2025-11 has no verified backup: no manifest",
    )


def test_purge_after_verified_backup() -> None:
    """A verified period allows the purge; the check is asked about that member and period."""
    asked: list[tuple[str, str]] = []
    switch = Switch("2026-01", "m2", "m3", "2025-11")
    verdict = may_purge(switch, True, lambda n, p: (asked.append((n, p)) or True, ""))
    assert (verdict.purge, asked) == (True, [("m3", "2025-11")])


def test_data_of_unknown_period_is_never_purged() -> None:
    """A member with data the rotation never recorded (lost state) is not purged."""
    verdict = may_purge(Switch("2026-01", "m2", "m3", None), True, lambda n, p: (True, ""))
    assert verdict.purge is False


def test_empty_member_is_purged() -> None:
    """A member that never held data may take the next period."""
    verdict = may_purge(Switch("2026-01", "m2", "m3", None), False, lambda n, p: (False, ""))
    assert verdict.purge is True
