"""No gap between the blank probe and mkfs, on a real loop device: a signature written after the
first probe, or after the second one, is never formatted over, and apply says why."""

import fcntl
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from appcore.claim import Claim
from appcore.cli import main
from appcore.errors import DiskError
from appcore.runner import Result, Runner
from appcore_testkit import (
    RecordingRunner,
    add_smbios,
    attach_disk,
    make_image,
    make_root,
)

from tests.prereq import missing, require_root, require_tools

pytestmark = pytest.mark.integration
INTRUDER_BYTES = 2 * 1024 * 1024  # ext4's superblock and group descriptors: blkid names it


@pytest.fixture(autouse=True)
def tools() -> None:
    require_tools("blkid", "wipefs", "mkfs.xfs", "mkfs.ext4", "losetup", "mount")
    require_root("attaching loop devices")


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[str]:
    """A blank 320 MiB loop device."""
    image = make_image(tmp_path / "loop.img", "blank")
    found = subprocess.run(
        ["losetup", "--find", "--show", str(image)], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        missing("a free loop device", f"losetup --find: {found.stderr.strip()}")
    device = found.stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "--detach", device], check=True)


@pytest.fixture
def intruder(tmp_path: Path) -> bytes:
    """The first 2 MiB of an ext4 filesystem labelled INTRUDER."""
    return head(make_image(tmp_path / "intruder.img", "ext4:INTRUDER"), INTRUDER_BYTES)


def head(image: Path, size: int) -> bytes:
    with open(str(image), "rb") as fh:
        return fh.read(size)


def write_plainly(device: str, data: bytes) -> None:
    """What an unaware program does: open for writing without O_EXCL, write, sync."""
    fd = os.open(device, os.O_WRONLY)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def blkid(device: str) -> dict:
    out = subprocess.run(
        ["blkid", "-p", "-o", "export", device], capture_output=True, text=True, check=False
    )
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


class GapWriter(RecordingRunner):
    """Writes `data` onto `device` just before the `at`-th command that starts with `prefix`."""

    def __init__(self, device: str, data: bytes, prefix: list[str], at: int) -> None:
        super().__init__()
        self.device, self.data, self.prefix, self.left = device, data, prefix, at

    def before(self, argv: list[str]) -> None:
        if argv[: len(self.prefix)] == self.prefix:
            self.left -= 1
            if self.left == 0:
                write_plainly(self.device, self.data)

    def run(self, argv: list[str], check: bool = True) -> Result:
        self.before(argv)
        return super().run(argv, check)

    def run_on_terminal(self, argv: list[str], answer: str = "n\n") -> Result:
        self.before(argv)
        return super().run_on_terminal(argv, answer)


def apply_hazelcast(tmp_path: Path, device: str, runner: Runner, fstype: str, monkeypatch) -> str:
    """apply on a HAZELCAST root whose DATA_MG is the loop device: exit 4, the error."""
    root = make_root(tmp_path, services=["hazelcast.service"])
    (root / "etc/appcore/role").write_text("HAZELCAST\n")
    add_smbios(root, ["appcore:ip=10.20.0.11", "appcore:peers=10.20.0.11,10.20.0.12"])
    attach_disk(root, "DATA_MG", Path(device))
    if fstype == "ext4":
        real_which = runner.which
        monkeypatch.setattr(runner, "which", lambda n: None if n == "mkfs.xfs" else real_which(n))
    argv = ["--root", str(root), "apply", "--disk-wait", "0"]
    assert main(argv, runner=runner) == 4
    return json.loads((root / "run/appcore/state.json").read_text())["error"]


def test_held_disk_refuses_a_forced_mkfs_of_another_program(loop: str) -> None:
    """While App-Core holds the disk, even `mkfs.xfs -f` of another program cannot open it."""
    claim = Claim(loop, "loop").take()
    try:
        other = subprocess.run(
            ["mkfs.xfs", "-q", "-f", "-L", "OTHER", loop], capture_output=True, text=True
        )
    finally:
        claim.release()
    assert (other.returncode, "Device or resource busy" in other.stderr) == (1, True)
    assert blkid(loop) == {}  # still blank


def test_held_disk_cannot_be_mounted(loop: str, tmp_path: Path) -> None:
    """A mount of the held disk fails (the kernel's exclusive claim), nothing is mounted."""
    write_plainly(loop, head(make_image(tmp_path / "x.img", "xfs:X"), 1 << 20))
    (tmp_path / "mnt").mkdir()
    claim = Claim(loop, "loop").take()
    try:
        mount = subprocess.run(["mount", loop, str(tmp_path / "mnt")], capture_output=True)
    finally:
        claim.release()
    assert mount.returncode != 0
    assert not os.path.ismount(str(tmp_path / "mnt"))


def test_a_disk_another_program_holds_is_refused(loop: str) -> None:
    """A disk another program opened O_EXCL: going on towards mkfs fails, naming the disk."""
    other = os.open(loop, os.O_RDONLY | os.O_EXCL)
    try:
        claim = Claim(loop, "data disk X").take()
        with pytest.raises(DiskError, match=r"^data disk X is in use \(mounted, or held by md"):
            claim.require_exclusive()
        assert claim.lock_fd is None  # the refusal let go of the disk
    finally:
        os.close(other)


def test_a_blank_disk_another_program_holds_is_not_formatted(
    tmp_path: Path, loop: str, monkeypatch
) -> None:
    """Blank but held O_EXCL by someone else: apply exits 4 naming the disk, mkfs never runs."""
    other = os.open(loop, os.O_RDONLY | os.O_EXCL)
    runner = RecordingRunner()
    try:
        error = apply_hazelcast(tmp_path, loop, runner, "xfs", monkeypatch)
    finally:
        os.close(other)
    assert error == (
        "data disk DATA_MG (/dev/disk/by-id/virtio-DATA_MG) is in use (mounted, or held by md, "
        "LVM, device-mapper or another mkfs): not touched"
    )
    assert [a for a in runner.history if a[0].startswith("mkfs")] == []
    assert blkid(loop) == {}


def test_a_mounted_data_disk_is_kept_by_the_next_apply(tmp_path: Path, loop: str) -> None:
    """The disk App-Core formatted and the system mounted (busy for O_EXCL): a second apply
    probes it, keeps it and exits 0 (found by the image spec test_second_apply_changes_nothing)."""
    root = make_root(tmp_path, services=["hazelcast.service"])
    (root / "etc/appcore/role").write_text("HAZELCAST\n")
    add_smbios(root, ["appcore:ip=10.20.0.11", "appcore:peers=10.20.0.11,10.20.0.12"])
    attach_disk(root, "DATA_MG", Path(loop))
    argv = ["--root", str(root), "apply", "--disk-wait", "0"]
    assert main(argv, runner=RecordingRunner()) == 0
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", loop, str(mnt)], check=True)
    try:
        runner = RecordingRunner()
        assert main(argv, runner=runner) == 0
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    assert [a for a in runner.history if a[0].startswith("mkfs")] == []
    assert (blkid(loop)["TYPE"], blkid(loop)["LABEL"]) == ("xfs", "DATA_MG")


def test_lock_stays_through_the_hand_over(loop: str) -> None:
    """After the exclusive claim is handed to mkfs, the flock is still held by App-Core."""
    claim = Claim(loop, "loop").take()
    claim.hand_over()
    probe = os.open(loop, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(probe)
        claim.release()


@pytest.mark.parametrize("fstype", ["xfs", "ext4"])
def test_signature_after_the_first_probe_is_found_by_the_second(
    tmp_path: Path, loop: str, intruder: bytes, fstype: str, monkeypatch
) -> None:
    """ext4 written between the blank probe and the re-probe: apply exits 4, names the change,
    mkfs never runs, the intruder's filesystem is intact."""
    link = str(tmp_path / "root/dev/disk/by-id/virtio-DATA_MG")  # what apply probes
    runner = GapWriter(loop, intruder, ["blkid", "-p", "-o", "export", link], at=2)
    error = apply_hazelcast(tmp_path, loop, runner, fstype, monkeypatch)
    assert error == (
        "data disk DATA_MG (/dev/disk/by-id/virtio-DATA_MG) changed after it was probed blank: "
        "it now carries a ext4 filesystem labelled 'INTRUDER', expected label 'DATA_MG'; "
        "not formatted"
    )
    assert [a for a in runner.history if a[0].startswith("mkfs")] == []
    assert blkid(loop)["LABEL"] == "INTRUDER"


@pytest.mark.parametrize(
    "fstype,refusal",
    [
        ("xfs", "appears to contain an existing filesystem (ext4)"),
        ("ext4", "contains a ext4 file system labelled 'INTRUDER'"),
    ],
)
def test_signature_after_the_second_probe_is_refused_by_mkfs(
    tmp_path: Path, loop: str, intruder: bytes, fstype: str, refusal: str, monkeypatch
) -> None:
    """ext4 written after the re-probe, right before mkfs: mkfs refuses it (mkfs.xfs without
    -f, mke2fs on a terminal), apply exits 4 with mkfs's reason, the intruder is intact."""
    runner = GapWriter(loop, intruder, ["mkfs." + fstype], at=1)
    error = apply_hazelcast(tmp_path, loop, runner, fstype, monkeypatch)
    assert error.startswith(f"formatting {tmp_path}/root/dev/disk/by-id/virtio-DATA_MG failed")
    assert refusal in error
    assert blkid(loop)["LABEL"] == "INTRUDER"


def test_mke2fs_without_a_terminal_formats_over_a_filesystem(tmp_path: Path) -> None:
    """Why mke2fs gets a terminal: with stdin not a tty it formats over xfs without asking."""
    image = make_image(tmp_path / "xfs.img", "xfs:KEEP")
    Runner().run(["mkfs.ext4", "-q", "-L", "OVER", str(image)])
    assert blkid(str(image))["LABEL"] == "OVER"


def test_blank_loop_device_is_formatted_through_the_claim(tmp_path: Path, loop: str) -> None:
    """Nothing in the gap: the held, re-probed blank disk is formatted and the claim released."""
    root = make_root(tmp_path, services=["hazelcast.service"])
    (root / "etc/appcore/role").write_text("HAZELCAST\n")
    add_smbios(root, ["appcore:ip=10.20.0.11", "appcore:peers=10.20.0.11,10.20.0.12"])
    attach_disk(root, "DATA_MG", Path(loop))
    runner = RecordingRunner()
    assert main(["--root", str(root), "apply", "--disk-wait", "0"], runner=runner) == 0
    assert (blkid(loop)["TYPE"], blkid(loop)["LABEL"]) == ("xfs", "DATA_MG")
    os.close(os.open(loop, os.O_RDONLY | os.O_EXCL))  # nobody holds it any more
