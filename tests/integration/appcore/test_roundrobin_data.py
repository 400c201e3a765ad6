"""App-Core moves a round-robin member's data for the fleet's rotation, against a real mariadbd
on the member's data directory (Mariabackup, the stand-in's tool): `appcore rr backup` to
stdout, `appcore rr restore` from stdin, `appcore rr purge`; the destructive two only when told
the member's hostname, and a failed restore leaves the member's data and server as they were.
systemctl stop/start of the role's service stop and start that server."""

import io
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from appcore.cli import main
from appcore.runner import Result
from appcore_testkit import RecordingRunner, add_smbios, attach_disk, make_image, make_root

from imagefactory.fleet.mariadb_local import LocalServer
from tests.rrkit import require_tools

pytestmark = pytest.mark.integration
HOSTNAME = "pers-db-rr7d-01"


class ServerRunner(RecordingRunner):
    """systemctl stop/start of mysql.service act on the test's server; the rest as recorded."""

    def __init__(self, server: LocalServer) -> None:
        super().__init__(active=["mysql.service"])
        self.server = server

    def run(self, argv: list[str], check: bool = True) -> Result:
        if argv[:2] == ["systemctl", "stop"] and argv[-1] == "mysql.service":
            self.server.stop()
        elif argv[:2] == ["systemctl", "start"] and argv[-1] == "mysql.service":
            self.server.start()
        return super().run(argv, check)


@pytest.fixture
def member(tmp_path: Path) -> Iterator[tuple[Path, LocalServer]]:
    """A configured MYSQL_RR_7D guest root (Mariabackup as its tool) and its running server,
    whose data directory is the role's (/data/db/mysql under the root)."""
    require_tools()
    root = make_root(tmp_path, services=["mysql.service"], hostname=HOSTNAME)
    server = LocalServer(
        tmp_path / "srv", root / "data/db/mysql", f"127.0.{random.randint(2, 250)}.9", 3306
    )
    roles = root / "usr/share/appcore/roles.json"
    doc = json.loads(roles.read_text())
    doc["roles"]["MYSQL_RR_7D"]["round_robin"].update(
        tool="mariabackup", defaults_file=str(server.cnf)
    )
    roles.write_text(json.dumps(doc))
    add_smbios(root, ["appcore:role=MYSQL_RR_7D"])
    attach_disk(root, "DATA_DB", make_image(tmp_path / "data_db.img", "blank"))
    server.write_cnf()
    # The first apply initialises the data directory (Debian's mariadb.service does not).
    assert main(["--root", str(root), "apply", "--disk-wait", "0"], runner=RecordingRunner()) == 0
    server.start()
    server.sql("CREATE DATABASE t; CREATE TABLE t.r (id INT PRIMARY KEY) ENGINE=InnoDB")
    server.sql("INSERT INTO t.r VALUES " + ",".join(f"({i})" for i in range(1, 51)))
    try:
        yield root, server
    finally:
        server.stop()


def test_first_apply_initialises_the_data_directory_once(member) -> None:
    """Apply made the data directory the server runs on, with tmp and log beside it; the
    next apply leaves it as it is."""
    root, server = member
    assert sorted(p.name for p in (root / "data/db").iterdir()) == ["conf", "log", "mysql", "tmp"]
    assert (root / "data/db/mysql/mysql").is_dir()
    runner = RecordingRunner(active=["mysql.service"], enabled=["mysql.service"])
    assert main(["--root", str(root), "apply", "--disk-wait", "0"], runner=runner) == 0
    assert not any("install-db" in " ".join(a) for a in runner.history)
    assert rows(server) == list(range(1, 51))


def rr(root: Path, server: LocalServer, *argv: str) -> tuple[int, ServerRunner]:
    runner = ServerRunner(server)
    return main(["--root", str(root), "rr", *argv], runner=runner), runner


def rows(server: LocalServer) -> list[int]:
    return [int(x) for x in (server.sql("SELECT id FROM t.r ORDER BY id") or "").split()]


def backup_to(path: Path, root: Path, server: LocalServer, monkeypatch) -> int:
    with path.open("wb") as raw:
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw))
        code, _ = rr(root, server, "backup")
        sys.stdout.flush()
        monkeypatch.undo()
    return code


def restore_from(path: Path, root: Path, server: LocalServer, monkeypatch, *argv: str):
    with path.open("rb") as raw:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(raw))
        done = rr(root, server, "restore", *argv)
        monkeypatch.undo()
    return done


def test_backup_then_restore_brings_back_the_rows_of_the_backup(
    member, tmp_path: Path, monkeypatch, capsys
) -> None:
    """rr backup streams xbstream; rr restore --confirm=HOSTNAME puts exactly those rows back."""
    root, server = member
    stream = tmp_path / "backup.xb"
    assert backup_to(stream, root, server, monkeypatch) == 0
    assert stream.read_bytes()[:8] == b"XBSTCK01"  # xbstream's chunk magic
    server.sql("DELETE FROM t.r WHERE id > 10; INSERT INTO t.r VALUES (99)")
    code, runner = restore_from(stream, root, server, monkeypatch, f"--confirm={HOSTNAME}")
    assert code == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {
        "data": "restored",
        "datadir": "/data/db/mysql",
    }
    assert rows(server) == list(range(1, 51))
    assert ["chown", "-R", "mysql:mysql", str(root / "data/db/mysql.restore")] in runner.history
    left = sorted(p.name for p in (root / "data/db").iterdir())
    assert left == ["conf", "log", "mysql", "tmp"]


def test_a_broken_stream_changes_nothing(member, tmp_path: Path, monkeypatch) -> None:
    """A restore whose stream is not a backup fails before the server is stopped: the member
    keeps its rows and keeps running, and no staging directory is left."""
    root, server = member
    junk = tmp_path / "junk.xb"
    junk.write_bytes(b"not a backup\n" * 100)
    code, runner = restore_from(junk, root, server, monkeypatch, f"--confirm={HOSTNAME}")
    assert code != 0
    assert ["systemctl", "stop", "mysql.service"] not in runner.recorded
    assert rows(server) == list(range(1, 51))
    assert sorted(p.name for p in (root / "data/db").iterdir()) == ["conf", "log", "mysql", "tmp"]


def test_restore_and_purge_need_this_members_hostname(
    member, tmp_path: Path, monkeypatch, capsys
) -> None:
    """Without --confirm=HOSTNAME (or with another member's) nothing is touched."""
    root, server = member
    stream = tmp_path / "backup.xb"
    stream.write_bytes(b"")
    for argv in ((), ("--confirm=pers-db-rr7d-02",)):
        capsys.readouterr()
        code, runner = rr(root, server, "purge", *argv)
        assert code != 0 and runner.recorded == []
        assert f"--confirm={HOSTNAME} (this member's hostname)" in capsys.readouterr().err
        code, runner = restore_from(stream, root, server, monkeypatch, *argv)
        assert code != 0 and runner.recorded == []
    assert rows(server) == list(range(1, 51))


def test_purge_leaves_an_empty_server_running(member, capsys) -> None:
    """rr purge --confirm=HOSTNAME: a new, empty data directory, the server answering on it."""
    root, server = member
    code, _ = rr(root, server, "purge", f"--confirm={HOSTNAME}")
    assert code == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["data"] == "purged"
    assert server.sql("SHOW DATABASES LIKE 't'") == ""
    assert sorted(p.name for p in (root / "data/db").iterdir()) == ["conf", "log", "mysql", "tmp"]
