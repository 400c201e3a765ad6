"""No gap between the blank probe and mkfs: App-Core holds a data disk from before its first
probe to the end of mkfs (README "Blank-disk detection", "Held from probe to format").

Two holds, both measured on Linux (tests/integration/appcore/test_disk_claim.py):
- The kernel's exclusive claim: a block device opened O_EXCL. While it is open, mount, mkfs,
  md, LVM and device-mapper (all open O_EXCL) get EBUSY; blkid -p and wipefs --no-act still
  read. mkfs needs this claim itself, so it is handed over right after the second probe.
- A BSD lock (flock LOCK_EX), held through mkfs: udev postpones probing a locked device and
  tools that follow systemd's block-device locking wait for it. mkfs does not take it.
From the hand-over to mkfs's own claim, mkfs refuses a signature by itself: mkfs.xfs without
-f, mke2fs when it has a terminal (App-Core gives it one, see disks.format_blank).
"""

import errno
import fcntl
import os
import stat
import time
from typing import List, Optional

from appcore import disks
from appcore.errors import DiskError
from appcore.runner import Runner

LOCK_WAIT_SECONDS = 30  # udev holds a shared lock while it processes an event of the disk


class Claim:
    """The holds on one data disk; `name` says which disk in every message."""

    def __init__(self, device: str, name: str) -> None:
        self.device = device
        self.name = name
        self.lock_fd: Optional[int] = None
        self.excl_fd: Optional[int] = None
        self.block_device = False  # a regular file (test image) gets the lock only
        self.in_use = False  # someone else holds the exclusive claim (e.g. our own mount)

    def take(self, wait: float = LOCK_WAIT_SECONDS) -> "Claim":
        try:
            self.lock_fd = os.open(self.device, os.O_RDONLY | os.O_CLOEXEC)
            self.block_device = stat.S_ISBLK(os.fstat(self.lock_fd).st_mode)
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError as exc:
                    if time.monotonic() >= deadline:
                        raise DiskError(
                            f"{self.name} stayed locked by another program for {wait:.0f}s "
                            "(flock): not touched"
                        ) from exc
                    time.sleep(0.2)
            # Linux ignores O_EXCL without O_CREAT on anything but a block device.
            try:
                self.excl_fd = os.open(self.device, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC)
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise
                # A disk App-Core mounted at an earlier boot is busy too: the probe decides,
                # and only a disk to be formatted needs the claim (require_exclusive).
                self.in_use = True
        except OSError as exc:
            self.release()
            raise DiskError(f"{self.name}: cannot open {self.device}: {exc}") from exc
        except DiskError:
            self.release()
            raise
        return self

    def require_exclusive(self) -> None:
        """Refuse to go on towards mkfs unless App-Core holds the exclusive claim."""
        if self.in_use:
            self.release()
            raise DiskError(
                f"{self.name} is in use (mounted, or held by md, LVM, device-mapper or "
                "another mkfs): not touched"
            )

    def hand_over(self) -> None:
        """Close the exclusive claim so mkfs can take it; the lock stays."""
        if self.excl_fd is not None:
            os.close(self.excl_fd)
            self.excl_fd = None

    def release(self) -> None:
        self.hand_over()
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def format(self, label: str, fstypes: List[str], fstype: str, runner: Runner) -> None:
        """Probe again under the claim; only a device still blank is handed to mkfs."""
        try:
            self.require_exclusive()
            again = disks.decide(disks.probe(self.device, runner), label, fstypes)
            if again.action != disks.FORMAT:
                raise DiskError(
                    f"{self.name} changed after it was probed blank: it now {again.reason}; "
                    "not formatted"
                )
            self.hand_over()
            disks.format_blank(self.device, label, fstype, runner)
        finally:
            self.release()
