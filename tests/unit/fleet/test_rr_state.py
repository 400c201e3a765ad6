"""fleet.rotate's state file and lock: a second run waits for the first; a dry run writes
nothing."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path

from imagefactory.fleet.backup_verify import Scratch
from imagefactory.fleet.backups import BackupTarget
from imagefactory.fleet.rotation import RotationGroup
from imagefactory.fleet.rr_rotate import Rotator, locked_state
from imagefactory.store.api import FsBackend

GROUP = RotationGroup("rr", ("a", "b", "c"), "daily")


def dry_rotator(tmp_path: Path, said: list[str]) -> Rotator:
    target = BackupTarget(FsBackend(tmp_path / "store"), tmp_path / "k", tmp_path / "signers")
    return Rotator(
        GROUP, {}, target, Scratch(tmp_path / "s"), tmp_path / "rr.state", say=said.append
    )


def test_second_run_waits_for_the_lock(tmp_path: Path) -> None:
    """While the state is locked a run does not start; it runs once the lock is released."""
    said: list[str] = []
    rot = dry_rotator(tmp_path, said)
    with locked_state(tmp_path / "rr.state"):
        worker = threading.Thread(target=rot.run, args=(datetime(2026, 1, 3, 0, 5), True))
        worker.start()
        time.sleep(0.5)
        assert said == []
    worker.join(10)
    assert said == ["rr: 2026-01-02 ended: would back up a, then switch to b"]


def test_dry_run_writes_no_state(tmp_path: Path) -> None:
    """A dry run says what it would do and leaves no state file."""
    said: list[str] = []
    rot = dry_rotator(tmp_path, said)
    rot.run(datetime(2026, 1, 3, 0, 5), True)
    assert said == ["rr: 2026-01-02 ended: would back up a, then switch to b"]
    assert not (tmp_path / "rr.state").exists()
