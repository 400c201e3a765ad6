"""A sealed disk read offline (no guest running, nothing mounted): which per-machine files a
template must not carry are still in it.

The seal's guest steps delete them, but a shutdown can write some again after the last
script ran (systemd saves a new random seed and a wtmp shutdown record when it stops), so the
host looks at the filesystems themselves: ext2/3/4 with debugfs at the partition's offset, XFS
with xfs_db on a read-only loop device of the partition (xfs_db has no offset option).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from imagefactory.errors import BuildError
from imagefactory.util.tools import child_env, require


class Rule(Enum):
    """What a published template may hold at a path."""

    ABSENT = "must not exist"
    EMPTY = "must be empty"

    def broken_by(self, size: int | None) -> bool:
        if size is None:
            return False
        return self is Rule.ABSENT or size > 0


@dataclass(frozen=True)
class PerMachine:
    path: str
    what: str
    rule: Rule


PER_MACHINE = (
    PerMachine("/var/lib/systemd/random-seed", "the random seed", Rule.ABSENT),
    PerMachine("/var/log/wtmp", "login records (wtmp)", Rule.EMPTY),
    PerMachine("/var/log/btmp", "failed login records (btmp)", Rule.EMPTY),
    PerMachine("/var/log/lastlog", "last login records (lastlog)", Rule.EMPTY),
)
# Where a path can sit when /var or /var/log is its own filesystem (CIS asks for both on OL8).
MOUNT_POINTS = ("/var/log", "/var", "/")


@dataclass(frozen=True)
class Partition:
    start: int  # bytes from the start of the disk
    size: int
    fstype: str


def partitions(raw: Path) -> list[Partition]:
    """The disk's filesystems: one per partition, or the whole disk when it has no table."""
    table = subprocess.run(
        [require("sfdisk"), "--json", str(raw)],
        capture_output=True,
        text=True,
        check=False,
        env=child_env(),
    )
    spans: list[tuple[int, int]] = []
    if table.returncode == 0 and table.stdout.strip():
        doc = json.loads(table.stdout)["partitiontable"]
        sector = int(doc.get("sectorsize", 512))
        spans = [(p["start"] * sector, p["size"] * sector) for p in doc.get("partitions", [])]
    if not spans:
        spans = [(0, raw.stat().st_size)]
    found = []
    for start, size in spans:
        kind = subprocess.run(
            [require("blkid"), "-p", "-O", str(start), "-S", str(size), "-o", "value"]
            + ["-s", "TYPE", str(raw)],
            capture_output=True,
            text=True,
            check=False,
            env=child_env(),
        )
        found.append(Partition(start, size, kind.stdout.strip()))
    return found


def file_size(raw: Path, part: Partition, path: str) -> int | None:
    """Size of `path` inside the partition's filesystem; None when it does not exist (or the
    filesystem is one this check does not read, e.g. the EFI partition's vfat)."""
    if part.fstype in ("ext2", "ext3", "ext4"):
        out = _run([require("debugfs"), "-R", f"stat {path}", f"{raw}?offset={part.start}"])
        found = re.search(r"\bSize: (\d+)", out)
        return int(found.group(1)) if found else None
    if part.fstype == "xfs":
        with _loop(raw, part) as dev:
            out = _run(
                [require("xfs_db"), "-r", "-c", f"path {path}", "-c", "print core.size", dev]
            )
        found = re.search(r"core\.size = (\d+)", out)
        return int(found.group(1)) if found and "No such file" not in out else None
    return None


def leftovers(raw: Path) -> list[str]:
    """Every per-machine file the disk still holds, as `PATH (what): rule` lines."""
    parts = [p for p in partitions(raw) if p.fstype in ("ext2", "ext3", "ext4", "xfs")]
    problems = []
    for item in PER_MACHINE:
        for part in parts:
            for inside in _candidates(item.path):
                size = file_size(raw, part, inside)
                if item.rule.broken_by(size):
                    problems.append(f"{item.path} ({item.what}, {size} bytes): {item.rule.value}")
    return sorted(set(problems))


def _candidates(path: str) -> list[str]:
    """`path` as seen from the root of each filesystem it may live on."""
    return [
        path if mount == "/" else path.removeprefix(mount)
        for mount in MOUNT_POINTS
        if mount == "/" or path.startswith(mount + "/")
    ]


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=child_env())
    return done.stdout + done.stderr


@contextmanager
def _loop(raw: Path, part: Partition) -> Iterator[str]:
    """A read-only device of the partition (the file itself when it fills the disk)."""
    if part.start == 0 and part.size == raw.stat().st_size:
        yield str(raw)
        return
    attach = subprocess.run(
        [require("losetup"), "--find", "--show", "--read-only"]
        + ["--offset", str(part.start), "--sizelimit", str(part.size), str(raw)],
        capture_output=True,
        text=True,
        check=False,
        env=child_env(),
    )
    if attach.returncode != 0:
        raise BuildError(
            f"cannot read the XFS filesystem of {raw} offline: losetup failed "
            f"({attach.stderr.strip()}); the seal check needs loop devices (root)"
        )
    dev = attach.stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run([require("losetup"), "-d", dev], check=False, env=child_env())
