"""fleet.yaml's round-robin fields: read into the group, and their meaning checked."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from imagefactory.errors import ConfigError
from imagefactory.fleet.config import load_fleet
from imagefactory.fleet.rotation import Rotation
from imagefactory.fleet.rr_commands import rotation_summary
from imagefactory.fleet.rr_config import rotation_group
from tests.fleetkit import group, hypervisor, write_fleet

HOST = {"hv-a": hypervisor("test:///default", "/srv/fleet")}


def rr_group(**fields: object) -> dict[str, object]:
    return group("MYSQL_RR_7D", "persistence", 3, "independent", "rr", ("DATA_DB", 10), **fields)


def test_rotation_fields_are_read(tmp_path: Path) -> None:
    """rotation, timezone and backup_keep reach the group; members are its node names."""
    groups = {"pers-db-rr7d": rr_group(rotation="daily", timezone="Europe/Berlin", backup_keep=6)}
    fleet = load_fleet(write_fleet(tmp_path, HOST, groups))
    rr = rotation_group(fleet.groups["pers-db-rr7d"])
    assert (rr.rotation, rr.timezone, rr.keep, rr.members) == (
        Rotation.DAILY,
        "Europe/Berlin",
        6,
        ("pers-db-rr7d-01", "pers-db-rr7d-02", "pers-db-rr7d-03"),
    )


def test_rotation_meaning_problems(tmp_path: Path) -> None:
    """An unknown time zone and a rotated cluster are each named with their field."""
    groups = {
        "pers-db-rr7d": rr_group(rotation="daily", timezone="Mars/Olympus"),
        "pers-db-rr3m": group(
            "MYSQL_RR_3M", "persistence", 3, "cluster", "rr3", ("DATA_DB", 10), rotation="monthly"
        ),
    }
    with pytest.raises(ConfigError) as err:
        load_fleet(write_fleet(tmp_path, HOST, groups))
    found = [f"{p.path}: {p.message}" for p in err.value.problems]
    assert ".groups.pers-db-rr7d.timezone: unknown time zone 'Mars/Olympus'" in found
    assert ".groups.pers-db-rr3m.rotation: a rotated group must be topology independent" in found


def test_default_keep_is_two_cycles(tmp_path: Path) -> None:
    """Without backup_keep a daily group of 3 keeps 6 periods; the time zone is UTC."""
    fleet = load_fleet(write_fleet(tmp_path, HOST, {"pers-db-rr7d": rr_group(rotation="daily")}))
    rr = rotation_group(fleet.groups["pers-db-rr7d"])
    assert (rr.keep, rr.timezone) == (6, "UTC")


def test_plan_names_each_rotation(tmp_path: Path) -> None:
    """fleet.plan names rotation, active member (2 March in Berlin: day 9557, mod 3 = 2: the
    third), the next rotation and the backups kept."""
    groups = {"pers-db-rr7d": rr_group(rotation="daily", timezone="Europe/Berlin")}
    fleet = load_fleet(write_fleet(tmp_path, HOST, groups))
    assert rotation_summary(fleet, datetime(2026, 3, 1, 23, 30, tzinfo=UTC)) == [
        "rotation pers-db-rr7d: daily (Europe/Berlin), active pers-db-rr7d-03, "
        "next 2026-03-03T00:00:00+01:00, backups kept 6 (`invoke fleet.backups`)"
    ]
