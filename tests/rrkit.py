"""Round-robin members without VMs: stand-alone mariadbd processes (no wsrep) on their own
loopback addresses, reached in this process instead of over SSH (imagefactory.fleet.dbmember's
protocol), and a rotation set up against a real S3 store."""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from imagefactory.fleet.mariadb_local import LocalServer
from tests.prereq import missing

TOOLS = ["mariadbd", "mariadb", "mariadb-install-db", "mariabackup", "mbstream"]


def require_tools() -> None:
    absent = [t for t in TOOLS if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]
    if absent:
        missing(f"MariaDB tools {absent}", "bootstrap.sh installs them (mariadb-server ...)")


class _ProcStream:
    def __init__(self, argv: list[str], err: Path) -> None:
        self._err = err
        self._eof = False
        with err.open("wb") as sink:
            self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=sink)

    def read(self, size: int = -1) -> bytes:
        assert self._proc.stdout is not None
        data = self._proc.stdout.read(size)
        self._eof = self._eof or not data
        return data

    def finish(self) -> tuple[int, str]:
        if not self._eof:
            self._proc.kill()  # not read to the end: the backup is abandoned
        self._proc.wait()
        return self._proc.returncode, self._err.read_text(errors="replace")


@dataclass
class LocalDbMember:
    """A member whose every action is logged in `events` (the shared list of its group)."""

    name: str
    server: LocalServer
    events: list[str] = field(default_factory=list)

    def open_backup(self) -> _ProcStream:
        self.events.append(f"backup {self.name}")
        argv = [
            "mariabackup",
            f"--defaults-file={self.server.cnf}",
            "--backup",
            "--stream=xbstream",
            f"--target-dir={self.server.root / 'bk-tmp'}",
        ]
        return _ProcStream(argv, self.server.root / "backup.err")

    def sql(self, query: str) -> str:
        return self.server.sql(query) or ""

    def set_read_only(self, on: bool) -> None:
        self.sql(f"SET GLOBAL read_only = {'ON' if on else 'OFF'}")

    def read_only(self) -> bool:
        return self.sql("SELECT @@read_only").strip() == "1"

    def purge(self) -> None:
        self.events.append(f"purge {self.name}")
        self.server.stop()
        shutil.rmtree(self.server.datadir)
        self.server.initialise()
        self.server.start()

    def restore(self, chunks: Iterable[bytes]) -> None:
        self.events.append(f"restore {self.name}")
        self.server.stop()
        shutil.rmtree(self.server.datadir)
        self.server.datadir.mkdir()
        unpack = subprocess.Popen(
            ["mbstream", "-x", "-C", str(self.server.datadir)], stdin=subprocess.PIPE
        )
        assert unpack.stdin is not None
        for chunk in chunks:
            unpack.stdin.write(chunk)
        unpack.stdin.close()
        assert unpack.wait() == 0
        subprocess.run(
            ["mariabackup", "--prepare", f"--target-dir={self.server.datadir}"],
            check=True,
            capture_output=True,
        )
        self.server.start()

    def rows(self) -> list[str]:
        if "app" not in self.sql("SHOW DATABASES").split():
            return []
        return self.sql("SELECT v FROM app.t ORDER BY id").split()

    def write(self, value: str) -> None:
        self.sql(
            "CREATE DATABASE IF NOT EXISTS app; CREATE TABLE IF NOT EXISTS app.t "
            "(id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(64)) ENGINE=InnoDB; "
            f"INSERT INTO app.t (v) VALUES ('{value}')"
        )


def start_members(
    root: Path, count: int, events: list[str], prefix: str = "rr"
) -> list[LocalDbMember]:
    """`count` initialised, running members <prefix>1..N on 127.0.X.1..N (X random per run)."""
    require_tools()
    net = random.randint(2, 250)
    members = []
    for i in range(1, count + 1):
        server = LocalServer(
            root / f"rr{i}", root / f"rr{i}" / "data", f"127.0.{net}.{i}", 3306, log_bin=True
        )
        server.initialise()
        server.start()
        members.append(LocalDbMember(f"{prefix}{i}", server, events))
    return members


def stop_members(members: list[LocalDbMember]) -> None:
    for member in members:
        member.server.stop()
