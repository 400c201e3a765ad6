"""A fleet.rotate run in its own process, for the kill test: `python -m tests.rr_child
SPEC.json` rotates the group SPEC describes and SIGKILLs itself when it is about to purge the
member SPEC names (a power cut between the backup and the purge)."""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

from imagefactory.fleet.backup_verify import Scratch
from imagefactory.fleet.backups import BackupTarget
from imagefactory.fleet.mariadb_local import LocalServer
from imagefactory.fleet.rotation import RotationGroup
from imagefactory.fleet.rr_rotate import Rotator
from imagefactory.store.s3_backend import S3Backend
from imagefactory.store.settings import Credentials, StoreKind, StoreSettings
from tests.rrkit import LocalDbMember


def main(spec_file: Path) -> None:
    spec = json.loads(spec_file.read_text())
    members = {
        m["name"]: LocalDbMember(
            m["name"], LocalServer(Path(m["root"]), Path(m["datadir"]), m["ip"], m["port"], True)
        )
        for m in spec["members"]
    }

    def power_cut() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    members[spec["kill_on_purge"]].purge = power_cut  # type: ignore[method-assign]
    s3 = spec["s3"]
    settings = StoreSettings(
        kind=StoreKind.S3,
        endpoint=s3["endpoint"],
        bucket=s3["bucket"],
        secure=s3["secure"],
        part_size=5 * 1024 * 1024,
    )
    backend = S3Backend(settings, Credentials(s3["access_key"], s3["secret_key"]))
    target = BackupTarget(backend, Path(spec["signing_key"]), Path(spec["allowed_signers"]))
    group = RotationGroup(spec["group"], tuple(members), "daily", "UTC")
    scratch = Scratch(Path(spec["scratch"]), spec["scratch_ip"], 3306)
    rot = Rotator(group, members, target, scratch, Path(spec["state"]), say=print)
    rot.run(datetime.fromisoformat(spec["at"]))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
