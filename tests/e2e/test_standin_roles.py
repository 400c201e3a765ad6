"""App-Core in the sealed stand-in image, booted like a hypervisor would boot a VM from it.

Runs after test_standin_pipeline.py (same workspace): the role comes from an SMBIOS OEM
string, the data disk is a virtio disk with serial DATA_DB kept across boots.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from imagefactory import commands
from imagefactory.guest.vm import smbios_oem
from imagefactory.util.fsutil import sha256_file
from imagefactory.verify import verify_image
from tests.prereq import require_tool

pytestmark = pytest.mark.e2e
SPECS = Path(__file__).resolve().parents[1] / "images"


def data_disk(path: Path) -> list[str]:
    # snapshot=off: the disk keeps what App-Core wrote, although the image boots -snapshot.
    return [
        "-drive",
        f"file={path},if=none,id=data,format=raw,snapshot=off",
        "-device",
        "virtio-blk-pci,drive=data,serial=DATA_DB",
    ]


def boot_and_check(
    ws: Path, disk: Path, spec: str, label: str, after_reboot: tuple[str, ...] = ()
) -> None:
    image = commands.build(ws / "standin.yaml", "standin-alpha", ws / "artifacts").image
    result = verify_image(
        image,
        None,
        [SPECS / spec],
        ws / "artifacts" / "reports",
        accelerator="tcg",
        label=label,
        extra_qemu_args=[*smbios_oem("appcore:role=SELFTEST"), *data_disk(disk)],
        after_reboot=[SPECS / s for s in after_reboot],
    )
    assert result.passed, f"{spec} {after_reboot} failed on the booted image, see {result.report}"


def blkid(path: Path) -> str:
    return subprocess.run(
        ["blkid", "-p", "-o", "export", str(path)], capture_output=True, text=True
    ).stdout


def test_role_from_smbios_configures_blank_disk_and_survives_reboot(workspace: Path) -> None:
    """Role SELFTEST from SMBIOS: blank DATA_DB formatted, mounted, service up; after a
    reboot of the same VM, App-Core finds everything in place and changes nothing."""
    disk = workspace / "data-db.raw"
    disk.write_bytes(b"")
    subprocess.run(["truncate", "-s", "1G", str(disk)], check=True)
    boot_and_check(
        workspace,
        disk,
        "test_appcore.py",
        "appcore-first-boot",
        after_reboot=("test_appcore_reboot.py",),
    )
    assert "LABEL=DATA_DB" in blkid(disk)


def test_foreign_filesystem_is_never_formatted(workspace: Path) -> None:
    """A DATA_DB disk holding another filesystem is left byte-for-byte as it was."""
    require_tool("mkfs.ext4")
    disk = workspace / "foreign.raw"
    subprocess.run(["truncate", "-s", "256M", str(disk)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-L", "FOREIGN", str(disk)], check=True)
    digest = sha256_file(disk)
    boot_and_check(workspace, disk, "test_appcore_foreign_disk.py", "appcore-foreign-disk")
    assert sha256_file(disk) == digest


def test_filesystem_behind_a_wiped_partition_table_is_never_formatted(workspace: Path) -> None:
    """ext4 FOREIGN in a partition at 1 MiB, then the first MiB zeroed (nothing left at offset
    0): the same refusal, and the disk is left byte-for-byte as it was."""
    require_tool("mkfs.ext4")
    disk = workspace / "foreign-wiped-table.raw"
    subprocess.run(["truncate", "-s", "256M", str(disk)], check=True)
    subprocess.run(
        [require_tool("sfdisk"), "--quiet", str(disk)],
        input="label: dos\nstart=2048,type=83\n",
        text=True,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    mkfs = ["mkfs.ext4", "-q", "-L", "FOREIGN", "-E", "offset=1048576", str(disk), "255M"]
    subprocess.run(mkfs, check=True)
    wipe = ["dd", "if=/dev/zero", f"of={disk}", "bs=1M", "count=1", "conv=notrunc"]
    subprocess.run(wipe, check=True, stderr=subprocess.DEVNULL)
    assert blkid(disk) == ""  # the old rule saw a blank disk here and formatted it
    digest = sha256_file(disk)
    boot_and_check(
        workspace, disk, "test_appcore_foreign_disk.py", "appcore-foreign-disk-wiped-table"
    )
    assert sha256_file(disk) == digest
