"""Test support for App-Core (not shipped in the image): a temporary guest root, a runner that
records systemd/mount commands while running blkid/wipefs/mkfs for real, and disk images made
with the real tools."""

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set

import pytest
from tests.prereq import in_ci  # the one definition of "in CI" for every test

from appcore.runner import Result, Runner

APPCORE_DIR = Path(__file__).resolve().parents[1]
CATALOGUE = APPCORE_DIR / "catalogue" / "roles.json"
SELFTEST_ROLE = APPCORE_DIR / "catalogue" / "selftest-role.json"
RECORDED = (
    "systemctl",
    "hostnamectl",
    "mount",
    "umount",
    "modprobe",
    "udevadm",
    "semanage",
    "restorecon",
)
IMAGE_BYTES = 320 * 1024 * 1024  # mkfs.xfs (xfsprogs 6.x) refuses filesystems under 300 MiB
PARTITION_OFFSET = 1024 * 1024  # where fdisk/sfdisk/parted start the first partition
MARKER_FILE = "marker.txt"
MARKER_TEXT = "written before the partition table was wiped\n"


def require_tool(name: str) -> str:
    """Path of a tool; a missing tool fails in CI and skips locally."""
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if path is None:
        message = f"{name} is not installed"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


class RecordingRunner(Runner):
    """Records (and simulates) systemd, mount and SELinux commands; runs everything else."""

    def __init__(self, active: Iterable[str] = (), enabled: Iterable[str] = ()) -> None:
        super().__init__()
        self.recorded: List[List[str]] = []
        self.active: Set[str] = set(active)
        self.enabled: Set[str] = set(enabled)
        self.fcontexts: Dict[str, str] = {}
        self.queued: Set[str] = set()

    def mutations(self) -> List[List[str]]:
        """Recorded commands that would change the machine (queries filtered out)."""
        queries = (
            ["systemctl", "list-jobs"],
            ["systemctl", "is-active"],
            ["systemctl", "is-enabled"],
            ["udevadm", "settle"],
            ["semanage", "fcontext", "-l"],
        )
        return [
            a
            for a in self.recorded
            if not any(a[: len(q)] == q for q in queries) and a[0] != "modprobe"
        ]

    def run(self, argv: List[str], check: bool = True) -> Result:
        if argv[0] not in RECORDED:
            return super().run(argv, check)
        self.recorded.append(list(argv))
        rc, out = 0, ""
        if argv[:2] == ["systemctl", "is-active"]:
            rc = 0 if argv[-1] in self.active else 3
        elif argv[:2] == ["systemctl", "is-enabled"]:
            rc = 0 if argv[-1] in self.enabled else 1
        elif argv[:2] == ["systemctl", "list-jobs"]:
            out = "".join(f"{n} {u} start waiting\n" for n, u in enumerate(sorted(self.queued)))
        elif argv[:2] == ["systemctl", "start"]:
            self.active.add(argv[-1])
            self.queued.discard(argv[-1])  # its job, if one waited, is done
        elif argv[:2] == ["systemctl", "enable"]:
            self.enabled.add(argv[-1])
        elif argv[:3] == ["semanage", "fcontext", "-l"]:
            out = "".join(
                f"{s}  all files  system_u:object_r:{t}:s0\n" for s, t in self.fcontexts.items()
            )
        elif argv[:2] == ["semanage", "fcontext"]:
            self.fcontexts[argv[-1]] = argv[-2]
        return Result(list(argv), rc, out, "")


def make_root(
    base: Path,
    family: Optional[str] = "persistence",
    services: Iterable[str] = (),
    cmdline: str = "console=ttyS0 quiet",
    hostname: str = "localhost",
    selftest: bool = False,
) -> Path:
    """A guest root: catalogue, image.json, /proc/cmdline, hostname and installed unit files."""
    root = base / "root"
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/cmdline").write_text(cmdline + "\n")
    (root / "etc/appcore").mkdir(parents=True)
    (root / "etc/hostname").write_text(hostname + "\n")
    share = root / "usr/share/appcore"
    shutil.copytree(str(APPCORE_DIR / "catalogue" / "templates"), str(share / "templates"))
    shutil.copy(str(CATALOGUE), str(share / "roles.json"))
    if family is not None:
        (root / "etc/appcore/image.json").write_text(json.dumps({"family": family}))
    if selftest:
        (root / "etc/appcore/roles.d").mkdir()
        shutil.copy(str(SELFTEST_ROLE), str(root / "etc/appcore/roles.d/selftest.json"))
    units = root / "usr/lib/systemd/system"
    units.mkdir(parents=True)
    for service in services:
        (units / service).write_text("[Service]\nExecStart=/bin/true\n")
    return root


def smbios_type11(strings: List[str], handle: int = 0x0B00) -> bytes:
    """A raw SMBIOS type 11 structure as the kernel exposes it in /sys/firmware/dmi/entries."""
    header = bytes([11, 5, handle & 0xFF, handle >> 8, len(strings)])
    body = b"".join(s.encode() + b"\0" for s in strings) or b"\0"
    return header + body + b"\0"


def add_smbios(root: Path, strings: List[str], entry: str = "11-0") -> None:
    path = root / "sys/firmware/dmi/entries" / entry
    path.mkdir(parents=True)
    (path / "raw").write_bytes(smbios_type11(strings))


def add_fw_cfg(root: Path, key: str, value: str) -> None:
    path = root / "sys/firmware/qemu_fw_cfg/by_name/opt/appcore" / key
    path.mkdir(parents=True)
    (path / "raw").write_text(value)


def make_image(path: Path, kind: str) -> Path:
    """A disk image: blank, junk, gpt, ext4:LABEL, xfs:LABEL or wiped-ext4:LABEL, made with the
    real tools."""
    with open(str(path), "wb") as fh:
        fh.truncate(IMAGE_BYTES)
    if kind == "junk":
        with open(str(path), "r+b") as fh:
            fh.seek(4096)
            fh.write(os.urandom(65536))
    elif kind == "gpt":
        subprocess.run(
            [require_tool("sfdisk"), "--quiet", str(path)],
            check=True,
            input="label: gpt\n,10MiB,L\n",
            universal_newlines=True,
            stdout=subprocess.DEVNULL,
        )
    elif kind.startswith("wiped-ext4:"):
        wiped_table_ext4(path, kind.split(":", 1)[1])
    elif kind.startswith(("ext4:", "xfs:")):
        fstype, label = kind.split(":", 1)
        subprocess.run(
            [require_tool("mkfs." + fstype), "-q", "-L", label, str(path)],
            check=True,
            stdin=subprocess.DEVNULL,
        )
    elif kind != "blank":
        raise ValueError("unknown image kind " + kind)
    return path


def wiped_table_ext4(path: Path, label: str) -> None:
    """An operator's mistake: a DOS table with one partition at 1 MiB holding ext4 (with
    MARKER_FILE in it), then the first MiB zeroed. blkid and wipefs see nothing at offset 0."""
    subprocess.run(
        [require_tool("sfdisk"), "--quiet", str(path)],
        check=True,
        input="label: dos\nstart=2048,type=83\n",
        universal_newlines=True,
        stdout=subprocess.DEVNULL,
    )
    blocks = (IMAGE_BYTES - PARTITION_OFFSET) // 4096
    subprocess.run(
        [require_tool("mkfs.ext4"), "-q", "-b", "4096", "-L", label]
        + ["-E", f"offset={PARTITION_OFFSET}", str(path), str(blocks)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    source = path.with_name(path.name + ".marker")
    source.write_text(MARKER_TEXT)
    subprocess.run(
        [require_tool("debugfs"), "-w", "-R", f"write {source} {MARKER_FILE}", ext4_at(path)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    source.unlink()
    with open(str(path), "r+b") as fh:
        fh.write(bytes(PARTITION_OFFSET))


def ext4_at(path: Path) -> str:
    """The e2fsprogs name (unix_io `?offset=`) of the filesystem at 1 MiB inside an image."""
    return f"{path}?offset={PARTITION_OFFSET}"


def read_marker(path: Path) -> str:
    """MARKER_FILE's text, read with debugfs (read-only) from the ext4 at 1 MiB."""
    return subprocess.run(
        [require_tool("debugfs"), "-R", "cat " + MARKER_FILE, ext4_at(path)],
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        universal_newlines=True,
    ).stdout


def attach_disk(root: Path, serial: str, image: Path) -> Path:
    """/dev/disk/by-id/virtio-SERIAL inside the root, a symlink to the image (like udev's)."""
    link = root / "dev/disk/by-id" / ("virtio-" + serial)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(image)
    return link
