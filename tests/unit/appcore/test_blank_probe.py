"""Blank-disk detection on real sparse image files: App-Core's own magic and sample checks.

blkid is replaced by a runner that finds nothing, so these tests show what the magic and sample
checks catch by themselves; tests/integration/appcore runs the same images through real blkid.
"""

import os
import struct
import subprocess
from itertools import pairwise
from pathlib import Path

import pytest
from appcore.disks import (
    FORMAT,
    MOUNT,
    REFUSE,
    SAMPLE_COUNT,
    blank_findings,
    decide,
    probe,
    sample_regions,
)
from appcore.runner import Result, Runner
from appcore_testkit import require_tool

MIB = 1024 * 1024
SIZE = 320 * MIB
MD_MAGIC = struct.pack("<I", 0xA92B4EFC)
FSTYPES = ["xfs", "ext4"]


class Answers(Runner):
    """blkid answers a fixed (exit code, stdout, stderr), by default "nothing found" (2);
    wipefs finds no signature. Records every argv."""

    def __init__(self, rc: int = 2, out: str = "", err: str = "") -> None:
        super().__init__()
        self.answer = (rc, out, err)

    def run(self, argv: list[str], check: bool = True) -> Result:
        self.history.append(list(argv))
        if argv[0] == "wipefs":
            return Result(list(argv), 0, "", "")
        return Result(list(argv), *self.answer)


def image(tmp_path: Path, writes: dict[int, bytes]) -> str:
    """A sparse SIZE image, zero except for writes {offset: bytes}."""
    path = tmp_path / "disk.img"
    with open(str(path), "wb") as fh:
        fh.truncate(SIZE)
        for offset, data in writes.items():
            fh.seek(offset)
            fh.write(data)
    return str(path)


def nonzero_random(length: int) -> bytes:
    return os.urandom(length).replace(b"\0", b"\1")


def test_truly_blank_image_is_blank(tmp_path: Path) -> None:
    """A never-written image has no finding and is formatted."""
    path = image(tmp_path, {})
    assert blank_findings(path, Answers()) == []
    assert decide(probe(path, Answers()), "DATA_DB", FSTYPES).action == FORMAT


def test_ext4_behind_a_wiped_partition_table(tmp_path: Path) -> None:
    """ext4 made at 1 MiB (its partition table gone) is found and named, with its offset."""
    path = image(tmp_path, {})
    subprocess.run(
        [require_tool("mkfs.ext4"), "-q", "-L", "FOREIGN", "-E", "offset=1048576", path, "200M"],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    decision = decide(probe(path, Answers()), "DATA_DB", FSTYPES)
    assert decision.action == REFUSE
    assert decision.reason.startswith(
        "is not provably blank: ext4 signature at offset 1048576 (label 'FOREIGN'); "
        "non-zero data at offset 10496"  # the superblock, 1 KiB into the filesystem
    )


@pytest.mark.parametrize(
    "writes,finding",
    [
        (
            {MIB + 512: b"LABELONE" + struct.pack("<QII", 1, 0, 32) + b"LVM2 001"},
            "LVM2_member signature at offset 1048576 (label in sector 1)",
        ),
        (
            {4096: MD_MAGIC + struct.pack("<I", 1)},
            "linux_raid_member signature at offset 0 (metadata 1.2, superblock at offset 4096)",
        ),
        (
            {MIB + 4096: MD_MAGIC + struct.pack("<I", 1)},
            "linux_raid_member signature at offset 1048576 (metadata 1.2, superblock at offset "
            "1052672)",
        ),
        (
            {SIZE - 8192: MD_MAGIC + struct.pack("<I", 1)},
            "linux_raid_member signature at offset 335536128 (metadata 1.0 superblock at the end)",
        ),
        (
            {SIZE - 65536: MD_MAGIC},
            "linux_raid_member signature at offset 335478784 (metadata 0.90 superblock at the end)",
        ),
        ({MIB: b"XFSB", MIB + 108: b"OLDXFS"}, "xfs signature at offset 1048576 (label 'OLDXFS')"),
        ({MIB + 65600: b"_BHRfS_M"}, "btrfs signature at offset 1048576"),
        ({2 * MIB: b"LUKS\xba\xbe\x00\x01"}, "crypto_LUKS signature at offset 2097152"),
        ({2 * MIB + 4086: b"SWAPSPACE2"}, "swap signature at offset 2097152 (page size 4096)"),
        (
            {SIZE - 512: b"EFI PART"},
            "gpt signature at offset 335543808 (backup header in the last 512-byte sector)",
        ),
        ({32256 + 510: b"\x55\xaa"}, "boot sector 0x55AA signature at offset 32256"),
    ],
    ids=[
        "lvm-pv-in-partition",
        "md-1.2",
        "md-1.2-in-partition",
        "md-1.0",
        "md-0.90",
        "xfs-in-partition",
        "btrfs-in-partition",
        "luks-at-2mib",
        "swap-at-2mib",
        "gpt-backup-only",
        "boot-sector-at-sector-63",
    ],
)
def test_known_magic_is_found_and_named(
    tmp_path: Path, writes: dict[int, bytes], finding: str
) -> None:
    """Each known magic, at its offset or a partition start, is a finding that names it."""
    path = image(tmp_path, writes)
    assert finding in blank_findings(path, Answers())
    assert decide(probe(path, Answers()), "DATA_DB", FSTYPES).action == REFUSE


def test_random_bytes_in_the_middle_only(tmp_path: Path) -> None:
    """4 MiB of data in the middle of the disk, no signature anywhere: not blank."""
    path = image(tmp_path, {160 * MIB: nonzero_random(4 * MIB)})
    assert blank_findings(path, Answers()) == [
        "non-zero data at offset 168296448 (in 3 of 250 sampled regions)"
    ]


def test_one_byte_at_the_very_end(tmp_path: Path) -> None:
    """A single non-zero byte in the last byte of the disk: not blank."""
    path = image(tmp_path, {SIZE - 1: b"\x01"})
    assert blank_findings(path, Answers()) == [
        "non-zero data at offset 335544319 (in 1 of 250 sampled regions)"
    ]


@pytest.mark.parametrize("size", [SIZE, 1 << 30, 100 << 30, 20 << 40])
def test_no_data_run_longer_than_the_spacing_escapes_the_samples(size: int) -> None:
    """Between two sampled regions there is never a gap of 1/255 of the disk or more."""
    regions = sample_regions(size)
    gaps = [nxt[0] - cur[1] for cur, nxt in pairwise(regions)]
    assert regions[0][0] == 0 and regions[-1][1] == size
    assert max(gaps) < size // (SAMPLE_COUNT - 1)


def test_failing_blkid_is_not_blank(tmp_path: Path) -> None:
    """blkid failing at an offset counts as a finding (fail closed), naming the command."""
    findings = blank_findings(image(tmp_path, {}), Answers(4, "", "blkid: I/O error"))
    assert findings[0] == "blkid -p -o export -O 17408 gave no clear answer (exit 4): " + (
        "blkid: I/O error"
    )


def test_missing_blkid_is_not_blank(tmp_path: Path) -> None:
    """Without blkid a blank image is still refused: every offset probe is a finding."""
    path = image(tmp_path, {})
    findings = blank_findings(path, Answers(127, "", "command not found: blkid"))
    assert len(findings) == 7
    assert findings[4] == (
        "blkid -p -o export -O 1048576 gave no clear answer (exit 127): command not found: blkid"
    )


def test_our_filesystem_full_of_data_is_still_mounted(tmp_path: Path) -> None:
    """The deep probe runs only when offset 0 is empty: our own disk with data is mounted."""

    class OursAtZero(Runner):
        def run(self, argv: list[str], check: bool = True) -> Result:
            self.history.append(list(argv))
            out = "TYPE=xfs\nLABEL=DATA_DB\n" if argv[0] == "blkid" else "xfs\n"
            return Result(list(argv), 0, out, "")

    runner = OursAtZero()
    path = image(tmp_path, {0: b"XFSB", 160 * MIB: nonzero_random(MIB)})
    assert decide(probe(path, runner), "DATA_DB", FSTYPES).action == MOUNT
    assert not any("-O" in argv for argv in runner.history)


@pytest.mark.parametrize("size,findings", [(0, 1), (512, 0), (64 * 1024, 0), (5 * MIB, 0)])
def test_small_images_are_probed_without_error(tmp_path: Path, size: int, findings: int) -> None:
    """Images smaller than the probed offsets: blank when zero, an empty one is refused."""
    path = tmp_path / "small.img"
    path.write_bytes(bytes(size))
    assert len(blank_findings(str(path), Answers())) == findings
