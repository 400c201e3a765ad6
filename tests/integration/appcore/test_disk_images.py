"""Disk safety on real image files, probed with the real blkid and wipefs."""

from pathlib import Path

import pytest
from appcore.disks import FORMAT, MOUNT, REFUSE, check_ours, decide, format_blank, probe
from appcore.errors import DiskError
from appcore.runner import Runner
from appcore_testkit import MARKER_TEXT, make_image, read_marker

from tests.prereq import require_tools

pytestmark = pytest.mark.integration
FSTYPES = ["xfs", "ext4"]


@pytest.fixture(autouse=True)
def tools() -> None:
    require_tools("blkid", "wipefs", "mkfs.ext4", "mkfs.xfs", "sfdisk", "debugfs")


@pytest.mark.parametrize(
    "kind,action",
    [
        ("blank", FORMAT),
        ("xfs:DATA_DB", MOUNT),
        ("ext4:DATA_DB", MOUNT),
        ("ext4:OTHER", REFUSE),
        ("xfs:DATA_DS", REFUSE),
        ("gpt", REFUSE),
        ("junk", REFUSE),
        ("wiped-ext4:FOREIGN", REFUSE),
    ],
)
def test_real_image_decision(tmp_path: Path, kind: str, action: str) -> None:
    """Each kind of image gets the expected decision from the real probes."""
    image = make_image(tmp_path / "disk.img", kind)
    assert decide(probe(str(image), Runner()), "DATA_DB", FSTYPES).action == action


def test_gpt_disk_has_no_blkid_type_but_is_refused(tmp_path: Path) -> None:
    """blkid -p reports no TYPE on a GPT-only disk; the partition table still refuses it."""
    found = probe(str(make_image(tmp_path / "gpt.img", "gpt")), Runner())
    assert "TYPE" not in found.blkid
    assert found.blkid["PTTYPE"] == "gpt"
    assert "PMBR" in found.signatures


def test_junk_disk_has_no_signature_but_is_refused(tmp_path: Path) -> None:
    """Random bytes carry no signature; the non-zero samples still refuse the disk."""
    found = probe(str(make_image(tmp_path / "junk.img", "junk")), Runner())
    assert found.signatures == [] and found.blkid == {}
    assert "non-zero data at offset 4" in decide(found, "DATA_DB", FSTYPES).reason


def test_wiped_partition_table_leaves_nothing_at_offset_0(tmp_path: Path) -> None:
    """ext4 behind a wiped partition table: blkid and wipefs find nothing at offset 0."""
    found = probe(str(make_image(tmp_path / "wiped.img", "wiped-ext4:FOREIGN")), Runner())
    assert (found.blkid, found.signatures) == ({}, [])


def test_blkid_at_the_partition_offset_names_the_filesystem(tmp_path: Path) -> None:
    """blkid -p -O 1048576 finds the ext4 of the wiped partition: first finding, with label."""
    image = make_image(tmp_path / "wiped.img", "wiped-ext4:FOREIGN")
    runner = Runner()
    found = probe(str(image), runner)
    assert found.findings[0] == "ext4 signature at offset 1048576 (label 'FOREIGN')"
    assert ["blkid", "-p", "-o", "export", "-O", "1048576", str(image)] in runner.history


def test_refused_wiped_table_disk_keeps_its_files(tmp_path: Path) -> None:
    """After the refusal the filesystem at 1 MiB still holds the file written before the wipe."""
    image = make_image(tmp_path / "wiped.img", "wiped-ext4:FOREIGN")
    assert decide(probe(str(image), Runner()), "DATA_DB", FSTYPES).action == REFUSE
    assert read_marker(image) == MARKER_TEXT


@pytest.mark.parametrize("fstype", FSTYPES)
def test_format_blank_then_mount_only(tmp_path: Path, fstype: str) -> None:
    """A formatted blank disk passes the mount-time check and is never formatted again."""
    image = make_image(tmp_path / "blank.img", "blank")
    format_blank(str(image), "DATA_MG", fstype, Runner())
    decision = check_ours(str(image), "DATA_MG", FSTYPES, Runner())
    assert (decision.action, decision.fstype) == (MOUNT, fstype)


def test_mkfs_never_forces_over_an_existing_filesystem(tmp_path: Path) -> None:
    """format_blank on an ext4 disk fails (mkfs.xfs refuses without -f) and the disk survives."""
    image = make_image(tmp_path / "ext4.img", "ext4:KEEP")
    with pytest.raises(DiskError, match="formatting"):
        format_blank(str(image), "DATA_DB", "xfs", Runner())
    assert probe(str(image), Runner()).blkid["LABEL"] == "KEEP"


def test_check_ours_refuses_a_blank_disk(tmp_path: Path) -> None:
    """The mount gate refuses a blank disk: only appcore apply may format it."""
    image = make_image(tmp_path / "blank.img", "blank")
    with pytest.raises(DiskError, match="blank, not yet prepared"):
        check_ours(str(image), "DATA_DB", FSTYPES, Runner())
