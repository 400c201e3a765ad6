"""The disk-safety rule as a pure function of a probe (real images are in the integration tests)."""

import pytest
from appcore.disks import FORMAT, MOUNT, REFUSE, Probe, decide

FSTYPES = ["xfs", "ext4"]


def probe(blkid=None, signatures=(), findings=()) -> Probe:
    return Probe(
        "/dev/disk/by-id/virtio-DATA_DB", dict(blkid or {}), list(signatures), list(findings)
    )


@pytest.mark.parametrize(
    "found,action",
    [
        (probe(), FORMAT),
        (probe({"TYPE": "xfs", "LABEL": "DATA_DB"}, ["xfs"]), MOUNT),
        (probe({"TYPE": "ext4", "LABEL": "DATA_DB"}, ["ext4"]), MOUNT),
        (probe({"TYPE": "ext4", "LABEL": "OTHER"}, ["ext4"]), REFUSE),
        (probe({"TYPE": "btrfs", "LABEL": "DATA_DB"}, ["btrfs"]), REFUSE),
        (probe({"PTTYPE": "gpt"}, ["gpt", "gpt", "PMBR"]), REFUSE),
        (probe({"TYPE": "xfs", "LABEL": "DATA_DB"}, ["xfs", "dos"]), REFUSE),
        (probe({}, ["LVM2_member"]), REFUSE),
        (probe(findings=["ext4 signature at offset 1048576"]), REFUSE),
    ],
)
def test_decision(found: Probe, action: str) -> None:
    """Blank -> format, ours -> mount, anything else -> refuse."""
    assert decide(found, "DATA_DB", FSTYPES).action == action


def test_partition_table_refusal_names_it() -> None:
    """The refusal message names the partition table type."""
    reason = decide(probe({"PTTYPE": "gpt"}, ["PMBR"]), "DATA_DB", FSTYPES).reason
    assert reason.startswith("carries a gpt partition table")


def test_mount_decision_carries_the_filesystem_type() -> None:
    """An existing ext4 data disk is mounted as ext4, whatever the catalogue prefers."""
    assert (
        decide(probe({"TYPE": "ext4", "LABEL": "DATA_DB"}, ["ext4"]), "DATA_DB", FSTYPES).fstype
        == "ext4"
    )


def test_findings_refusal_names_them() -> None:
    """Nothing at offset 0 but findings elsewhere: the refusal lists every finding."""
    found = probe(findings=["ext4 signature at offset 1048576 (label 'X')", "non-zero data at 9"])
    assert decide(found, "DATA_DB", FSTYPES).reason == (
        "is not provably blank: ext4 signature at offset 1048576 (label 'X'); non-zero data at 9"
    )
