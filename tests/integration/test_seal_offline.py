"""The seal's offline look at a disk: real filesystems (ext4 in a partition, XFS whole-disk and
in a partition, as /var) made with their own mkfs and read with debugfs and xfs_db."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from imagefactory.guest.offline import Partition, leftovers, partitions
from tests.prereq import require_tools

pytestmark = pytest.mark.integration
MIB = 1 << 20
SEED = "/var/lib/systemd/random-seed (the random seed, 32 bytes): must not exist"
WTMP = "/var/log/wtmp (login records (wtmp), 384 bytes): must be empty"


def tree(root: Path, seed: bool, wtmp_bytes: int) -> Path:
    """A root filesystem's /var as the seal leaves it (or a shutdown rewrote it)."""
    (root / "var/lib/systemd").mkdir(parents=True)
    (root / "var/log").mkdir(parents=True)
    if seed:
        (root / "var/lib/systemd/random-seed").write_bytes(b"\x17" * 32)
    (root / "var/log/wtmp").write_bytes(b"\x08" * wtmp_bytes)
    (root / "var/log/btmp").write_bytes(b"")
    return root


def partitioned(raw: Path, size_mib: int) -> None:
    raw.write_bytes(b"")
    subprocess.run(["truncate", "-s", f"{size_mib}M", str(raw)], check=True)
    subprocess.run(["sfdisk", "-q", str(raw)], input="start=2048, type=L\n", text=True, check=True)


def ext4_disk(tmp_path: Path, seed: bool, wtmp_bytes: int) -> Path:
    require_tools("sfdisk", "mkfs.ext4", "debugfs", "blkid")
    raw = tmp_path / "disk.raw"
    partitioned(raw, 64)
    root = tree(tmp_path / "root", seed, wtmp_bytes)
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-E", f"offset={MIB}", "-d", str(root), str(raw), "60M"],
        check=True,
    )
    return raw


def xfs_proto(tmp_path: Path, seed: bool, wtmp_bytes: int) -> Path:
    """mkfs.xfs's protofile for a /var filesystem (paths without the /var prefix)."""
    root = tree(tmp_path / "root", seed, wtmp_bytes) / "var"
    seed_line = f"random-seed ---600 0 0 {root / 'lib/systemd/random-seed'}\n" if seed else ""
    proto = tmp_path / "proto"
    proto.write_text(
        "dummy\n0 0\nd--755 0 0\n"
        f"lib d--755 0 0\nsystemd d--755 0 0\n{seed_line}$\n$\n"
        f"log d--755 0 0\nwtmp ---664 0 0 {root / 'log/wtmp'}\n$\n$\n"
    )
    return proto


def test_a_partitioned_ext4_root_is_read(tmp_path: Path) -> None:
    """sfdisk's table and blkid find the ext4 at 1 MiB."""
    raw = ext4_disk(tmp_path, seed=False, wtmp_bytes=0)
    assert partitions(raw) == [Partition(MIB, 63 * MIB, "ext4")]


def test_the_seed_and_login_records_left_in_ext4_are_named(tmp_path: Path) -> None:
    """A seed saved at shutdown and a wtmp shutdown record: both named, with their sizes."""
    assert leftovers(ext4_disk(tmp_path, seed=True, wtmp_bytes=384)) == [SEED, WTMP]


def test_a_clean_ext4_root_passes(tmp_path: Path) -> None:
    """No seed, empty wtmp and btmp: nothing to report."""
    assert leftovers(ext4_disk(tmp_path, seed=False, wtmp_bytes=0)) == []


def test_a_separate_var_on_xfs_is_read(tmp_path: Path) -> None:
    """/var as its own XFS (the whole disk): the paths are found below its root."""
    require_tools("mkfs.xfs", "xfs_db", "blkid", "sfdisk")
    raw = tmp_path / "var.raw"
    subprocess.run(["truncate", "-s", "320M", str(raw)], check=True)
    proto = xfs_proto(tmp_path, seed=True, wtmp_bytes=384)
    subprocess.run(["mkfs.xfs", "-q", "-p", str(proto), str(raw)], check=True)
    assert leftovers(raw) == [SEED, WTMP]


def test_xfs_in_a_partition_is_read_through_a_loop_device(tmp_path: Path) -> None:
    """XFS at 1 MiB: xfs_db reads it through a read-only loop device of the partition."""
    require_tools("mkfs.xfs", "xfs_db", "blkid", "sfdisk", "losetup")
    raw = tmp_path / "disk.raw"
    partitioned(raw, 330)
    part = tmp_path / "part.raw"
    subprocess.run(["truncate", "-s", "320M", str(part)], check=True)
    proto = xfs_proto(tmp_path, seed=True, wtmp_bytes=0)
    subprocess.run(["mkfs.xfs", "-q", "-p", str(proto), str(part)], check=True)
    subprocess.run(
        ["dd", f"if={part}", f"of={raw}", "bs=1M", "seek=1", "conv=notrunc,sparse", "status=none"],
        check=True,
    )
    assert leftovers(raw) == [SEED]
