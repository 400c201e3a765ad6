"""Round-robin rotation without VMs: three stand-alone mariadbd members (daily group), backups
streamed into a real S3 server (moto, or the CI's second server), each verified by a restore
test; a member is purged only once the period it holds has a verified backup."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from imagefactory.fleet import rr_commands
from imagefactory.fleet.backup_verify import Scratch
from imagefactory.fleet.backups import BackupTarget, is_verified, list_backups, load_manifest
from imagefactory.fleet.config import load_fleet
from imagefactory.fleet.hypervisor import FleetError
from imagefactory.fleet.rotation import RotationGroup, member_of
from imagefactory.fleet.rr_prune import backups_to_prune, prune
from imagefactory.fleet.rr_restore import restore_backup
from imagefactory.fleet.rr_rotate import RotationBlocked, Rotator
from imagefactory.store.s3_backend import S3Backend
from imagefactory.store.settings import Credentials
from tests.fleetkit import group, hypervisor, write_fleet
from tests.loopback_s3 import LoopbackS3
from tests.rrkit import LocalDbMember, start_members, stop_members
from tests.storekit import SigningKeys

pytestmark = pytest.mark.integration
GROUP = RotationGroup("rr", ("rr1", "rr2", "rr3"), "daily", "UTC")
REPO = Path(__file__).resolve().parents[3]
HOST = {"hv-a": hypervisor("test:///default", "/srv/fleet")}
DAY0 = date(2026, 1, 2)  # rr1 holds it


def day(i: int) -> str:
    return (DAY0 + timedelta(days=i)).isoformat()


def midnight_after(i: int) -> datetime:
    return datetime.fromisoformat(day(i + 1) + "T00:05:00")


@pytest.fixture
def members(tmp_path: Path) -> Iterator[dict[str, LocalDbMember]]:
    started = start_members(tmp_path / "members", 3, [])
    try:
        yield {m.name: m for m in started}
    finally:
        stop_members(started)


def make_target(
    server: LoopbackS3, bucket: str, keys: SigningKeys, creds: Credentials | None = None
) -> BackupTarget:
    backend = S3Backend(server.settings(bucket), creds or server.credentials())
    return BackupTarget(backend, keys.private_key, keys.allowed_signers)


def rotator(members: dict[str, LocalDbMember], target: BackupTarget, tmp_path: Path) -> Rotator:
    ip = next(iter(members.values())).server.ip.rsplit(".", 1)[0] + ".200"
    return Rotator(
        GROUP,
        members,
        target,
        Scratch(tmp_path / "scratch", ip, 3306),
        tmp_path / "rr.state",
        say=lambda line: None,
    )


def guard_purges(
    members: dict[str, LocalDbMember], target: BackupTarget, purged: list[str]
) -> None:
    """Before any purge, every period the member's rows came from must have a verified backup."""
    for member in members.values():
        inner = member.purge

        def checked(m: LocalDbMember = member, inner_purge: object = inner) -> None:
            for period in sorted(set(m.rows())):
                ok, why = is_verified(target, GROUP.name, m.name, period)
                assert ok, f"{m.name} purged while {period} is not verified: {why}"
            purged.append(f"{m.name}:{','.join(sorted(set(m.rows())))}")
            inner_purge()  # type: ignore[operator]

        member.purge = checked  # type: ignore[method-assign]


def test_rotation_over_more_than_a_cycle(
    members: dict[str, LocalDbMember],
    s3_server: LoopbackS3,
    new_bucket: str,
    keys: SigningKeys,
    tmp_path: Path,
) -> None:
    """Four daily rotations of three members: every backup verified, each purge after it."""
    target = make_target(s3_server, new_bucket, keys)
    purged: list[str] = []
    guard_purges(members, target, purged)
    rot = rotator(members, target, tmp_path)
    for i in range(4):
        members[member_of(GROUP, day(i))].write(day(i))
        rot.run(midnight_after(i))
    assert purged == ["rr2:", "rr3:", "rr1:2026-01-02", "rr2:2026-01-03"]
    listed = [(b.node, b.period, b.verified) for b in list_backups(target, GROUP.name)]
    assert listed == [
        ("rr1", "2026-01-02", "verified"),
        ("rr1", "2026-01-05", "verified"),
        ("rr2", "2026-01-03", "verified"),
        ("rr3", "2026-01-04", "verified"),
    ]
    manifest = load_manifest(target, GROUP.name, "rr1", "2026-01-02")
    assert list(manifest.checksums) == ["app.t"]
    assert manifest.position.binlog_file.startswith("binlog.")
    assert members["rr3"].read_only() is True
    assert members["rr3"].rows() == ["2026-01-04"]
    # retention of one period: rr3 still holds 2026-01-04, so its backup stays
    holds = json.loads((tmp_path / "rr.state").read_text())["rr"]["holds"]
    found = [(b.node, b.period) for b in list_backups(target, GROUP.name)]
    doomed = backups_to_prune(replace(GROUP, backup_keep=1), found, holds, midnight_after(3))
    assert doomed == [("rr1", "2026-01-02"), ("rr2", "2026-01-03")]
    prune(target, GROUP.name, doomed)
    assert [(b.node, b.period) for b in list_backups(target, GROUP.name)] == [
        ("rr1", "2026-01-05"),
        ("rr3", "2026-01-04"),
    ]


def test_store_refusing_upload_blocks_the_purge(
    members: dict[str, LocalDbMember],
    s3_server: LoopbackS3,
    new_bucket: str,
    keys: SigningKeys,
    tmp_path: Path,
) -> None:
    """Uploads refused: the member whose period has no backup is not purged, old active stays."""
    target = make_target(s3_server, new_bucket, keys, Credentials("nobody", "wrong-secret"))
    purged: list[str] = []
    guard_purges(members, target, purged)
    rot = rotator(members, target, tmp_path)
    for i in range(2):
        members[member_of(GROUP, day(i))].write(day(i))
        rot.run(midnight_after(i))
    state = json.loads((tmp_path / "rr.state").read_text())["rr"]["steps"]
    assert "credentials rejected" in state["2026-01-02"]["backup"]
    members["rr3"].write(day(2))
    with pytest.raises(
        RotationBlocked,
        match=r"not switching to rr1 after 2026-01-04: rr1 not purged, period 2026-01-02 has no "
        r"verified backup",
    ):
        rot.run(midnight_after(2))
    assert purged == ["rr2:", "rr3:"]
    assert members["rr1"].rows() == ["2026-01-02"]
    assert members["rr3"].read_only() is False


def test_corrupted_backup_is_not_verified(
    members: dict[str, LocalDbMember],
    s3_server: LoopbackS3,
    new_bucket: str,
    keys: SigningKeys,
    tmp_path: Path,
) -> None:
    """A stored backup changed after verification no longer counts: no purge of its member."""
    target = make_target(s3_server, new_bucket, keys)
    purged: list[str] = []
    guard_purges(members, target, purged)
    rot = rotator(members, target, tmp_path)
    members["rr1"].write(day(0))
    rot.run(midnight_after(0))
    target.backend.put_bytes(target.key("rr", "rr1", day(0), "backup.xbstream"), b"not a backup")
    rot.run(midnight_after(1))
    with pytest.raises(
        RotationBlocked,
        match=r"rr1 not purged, period 2026-01-02 has no verified backup: the stored object "
        r"hashes to",
    ):
        rot.run(midnight_after(2))
    assert purged == ["rr2:", "rr3:"]
    assert members["rr1"].rows() == ["2026-01-02"]
    assert [(b.node, b.verified) for b in list_backups(target, GROUP.name)][0] == (
        "rr1",
        "corrupted",
    )


def test_killed_between_backup_and_purge(
    members: dict[str, LocalDbMember],
    s3_server: LoopbackS3,
    new_bucket: str,
    keys: SigningKeys,
    tmp_path: Path,
) -> None:
    """A run SIGKILLed after the backup, as it starts the purge, run again: one backup, one
    purge in all."""
    target = make_target(s3_server, new_bucket, keys)
    events: list[str] = []
    for member in members.values():
        member.events = events
    rot = rotator(members, target, tmp_path)
    members["rr1"].write(day(0))
    rot.run(midnight_after(0))
    members["rr2"].write(day(1))
    rot.run(midnight_after(1))
    members["rr3"].write(day(2))
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.rr_child",
            str(child_spec(members, s3_server, new_bucket, keys, tmp_path)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
    assert "rr: backup of rr3 for 2026-01-04: verified" in child.stdout
    assert is_verified(target, "rr", "rr3", day(2)) == (True, "")
    assert members["rr1"].rows() == ["2026-01-02"]  # the purge never ran
    rot.run(midnight_after(2))
    assert events[-1:] == ["purge rr1"]
    assert events.count("backup rr3") == 0  # the child's backup is not taken again here
    assert events.count("purge rr1") == 1
    assert members["rr1"].rows() == []


def child_spec(
    members: dict[str, LocalDbMember],
    server: LoopbackS3,
    bucket: str,
    keys: SigningKeys,
    tmp_path: Path,
) -> Path:
    """What tests/rr_child.py needs to run the same rotation in its own process."""
    creds = server.credentials()
    settings = server.settings(bucket)
    first = next(iter(members.values())).server
    spec = {
        "group": GROUP.name,
        "members": [
            {
                "name": m.name,
                "root": str(m.server.root),
                "datadir": str(m.server.datadir),
                "ip": m.server.ip,
                "port": m.server.port,
            }
            for m in members.values()
        ],
        "kill_on_purge": "rr1",
        "s3": {
            "endpoint": settings.endpoint,
            "bucket": bucket,
            "secure": settings.secure,
            "access_key": creds.access_key,
            "secret_key": creds.secret_key,
        },
        "signing_key": str(keys.private_key),
        "allowed_signers": str(keys.allowed_signers),
        "scratch": str(tmp_path / "scratch"),
        "scratch_ip": first.ip.rsplit(".", 1)[0] + ".200",
        "state": str(tmp_path / "rr.state"),
        "at": midnight_after(2).isoformat(),
    }
    path = tmp_path / "child.json"
    path.write_text(json.dumps(spec))
    return path


def test_clock_skipping_a_day(
    members: dict[str, LocalDbMember],
    s3_server: LoopbackS3,
    new_bucket: str,
    keys: SigningKeys,
    tmp_path: Path,
) -> None:
    """Two periods ended at once: each backed up and switched, oldest first."""
    target = make_target(s3_server, new_bucket, keys)
    events: list[str] = []
    for member in members.values():
        member.events = events
    rot = rotator(members, target, tmp_path)
    members["rr1"].write(day(0))
    rot.run(midnight_after(0))
    members["rr2"].write(day(1))
    rot.run(midnight_after(2))  # the run after day 1 never happened
    assert events == [
        "backup rr1",
        "purge rr2",
        "backup rr2",
        "purge rr3",
        "backup rr3",
        "purge rr1",
    ]
    verified = [(b.node, b.period, b.verified) for b in list_backups(target, GROUP.name)]
    assert verified == [
        ("rr1", "2026-01-02", "verified"),
        ("rr2", "2026-01-03", "verified"),
        ("rr3", "2026-01-04", "verified"),
    ]


def test_rotate_command_exits_non_zero_naming_member_and_period(
    tmp_path: Path, s3_server: LoopbackS3, new_bucket: str, keys: SigningKeys
) -> None:
    """fleet.rotate over a fleet file: a refused switch fails the command; fleet.backups
    shows the active member, the next rotation and each backup's state."""
    started = start_members(tmp_path / "m", 3, [], prefix="pers-db-rr7d-0")
    try:
        members = {m.name: m for m in started}
        target = make_target(s3_server, new_bucket, keys)
        rr = group(
            "MYSQL_RR_7D", "persistence", 3, "independent", "rr", ("DATA_DB", 10), rotation="daily"
        )
        fleet = load_fleet(write_fleet(tmp_path / "f", HOST, {"pers-db-rr7d": rr}))
        scratch = Scratch(tmp_path / "scratch", started[0].server.ip.rsplit(".", 1)[0] + ".9")

        def run(at: str) -> str:
            return rr_commands.rotate(
                fleet,
                None,
                datetime.fromisoformat(at),
                False,
                members=lambda f, g: members,
                targets=lambda f, g: target,
                scratch=scratch,
                say=lambda line: None,
            )

        members["pers-db-rr7d-01"].write("2026-01-02")
        assert run("2026-01-03T00:05") == "rotation done"
        stored = target.key("pers-db-rr7d", "pers-db-rr7d-01", "2026-01-02", "backup.xbstream")
        target.backend.put_bytes(stored, b"changed")
        run("2026-01-04T00:05")
        with pytest.raises(
            FleetError, match="pers-db-rr7d: not switching to pers-db-rr7d-01 after 2026-01-04"
        ):
            run("2026-01-05T00:05")
        listing = rr_commands.backups(
            fleet, None, targets=lambda f, g: target, at=datetime.fromisoformat("2026-01-05T12:00")
        ).splitlines()
        assert listing[0] == (
            "pers-db-rr7d: calendar's active pers-db-rr7d-01, last rotated period 2026-01-03, "
            "next rotation 2026-01-06T00:00:00+00:00"
        )
        assert [line.split()[:2] + line.split()[4:5] for line in listing[1:]] == [
            ["pers-db-rr7d-01", "2026-01-02", "corrupted"],
            ["pers-db-rr7d-02", "2026-01-03", "verified"],
            ["pers-db-rr7d-03", "2026-01-04", "verified"],
        ]
        status = rr_commands.rotation_status(
            fleet, targets=lambda f, g: target, now=datetime.fromisoformat("2026-01-05T12:00")
        )
        assert status == [
            "rotation pers-db-rr7d: writes go to pers-db-rr7d-03 (last rotated period "
            "2026-01-03; the calendar says pers-db-rr7d-01: fleet.rotate), next rotation "
            "2026-01-06T00:00:00+00:00",
            "  pers-db-rr7d-01: last backup recorded as verified: 2026-01-02",
            "  pers-db-rr7d-02: last backup recorded as verified: 2026-01-03",
            "  pers-db-rr7d-03: last backup recorded as verified: 2026-01-04",
            "  (records only: `invoke fleet.backups` re-hashes each backup)",
        ]
        gone = target.key("pers-db-rr7d", "pers-db-rr7d-02", "2026-01-03", "verified.json")
        target.backend.delete(gone)  # its verification record lost: not counted
        status = rr_commands.rotation_status(fleet, targets=lambda f, g: target)
        assert status[2] == "  pers-db-rr7d-02: last backup recorded as verified: none"
        unreadable = rr_commands.rotation_status(
            fleet, targets=lambda f, g: make_target(s3_server, "no-such-bucket", keys)
        )
        assert unreadable[1].startswith("  backups: not readable (")
    finally:
        stop_members(started)


def test_restore_of_a_purged_period(
    members: dict[str, LocalDbMember],
    s3_server: LoopbackS3,
    new_bucket: str,
    keys: SigningKeys,
    tmp_path: Path,
) -> None:
    """A purged member's period comes back from its backup with the same rows; a member
    holding data is refused unless named by --overwrite."""
    target = make_target(s3_server, new_bucket, keys)
    rot = rotator(members, target, tmp_path)
    for i in range(3):
        members[member_of(GROUP, day(i))].write(day(i))
        rot.run(midnight_after(i))
    assert members["rr1"].rows() == []  # purged at the switch after 2026-01-04
    with pytest.raises(FleetError, match=r"rr2 holds 1 table\(s\) .* --overwrite=rr2"):
        restore_backup(target, "rr", members, "rr1", day(0), to="rr2")
    done = restore_backup(target, "rr", members, "rr1", day(0))
    assert (done.onto, done.tables, members["rr1"].rows()) == ("rr1", 1, ["2026-01-02"])
    assert members["rr2"].rows() == ["2026-01-03"]
