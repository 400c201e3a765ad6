"""App-Core on a round-robin member (MYSQL_RR_7D) against a real mariadbd: read-only from its
first boot, writable only when the fleet says so (`appcore rr mode`), the mode kept on the
data disk across boots, and `appcore ready` judging the server by that mode."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from appcore.cli import main
from appcore.errors import CatalogueError
from appcore_testkit import (
    CATALOGUE,
    RecordingRunner,
    add_smbios,
    attach_disk,
    make_image,
    make_root,
)

from appcore.catalogue import load_catalogue
from tests.prereq import require_tools
from tests.rrkit import LocalDbMember, start_members, stop_members

pytestmark = pytest.mark.integration
MODE = "data/db/conf/appcore-rr-mode.cnf"


@pytest.fixture
def member(tmp_path: Path) -> Iterator[LocalDbMember]:
    started = start_members(tmp_path / "db", 1, [])
    try:
        yield started[0]
    finally:
        stop_members(started)


@pytest.fixture
def root(tmp_path: Path, member: LocalDbMember) -> Path:
    """A MYSQL_RR_7D guest root whose catalogue points the role's client at `member`."""
    require_tools("blkid", "wipefs", "mkfs.xfs")
    root = make_root(tmp_path, services=["mysql.service"], hostname="pers-db-rr7d-01")
    roles = root / "usr/share/appcore/roles.json"
    doc = json.loads(roles.read_text())
    doc["roles"]["MYSQL_RR_7D"]["round_robin"]["defaults_file"] = str(member.server.cnf)
    roles.write_text(json.dumps(doc))
    add_smbios(root, ["appcore:role=MYSQL_RR_7D"])
    attach_disk(root, "DATA_DB", make_image(tmp_path / "data_db.img", "blank"))
    return root


def appcore(root: Path, runner: RecordingRunner, *argv: str) -> int:
    return main(["--root", str(root), *argv], runner=runner)


def server_read_only(member: LocalDbMember) -> str:
    return member.sql("SELECT @@GLOBAL.read_only").strip()


def ready(root: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    appcore(root, RecordingRunner(active=["mysql.service"]), "ready", "--json")
    return json.loads(capsys.readouterr().out)


def test_first_boot_makes_the_member_read_only(root: Path) -> None:
    """No mode yet: apply writes read_only=ON into the option file the server includes."""
    assert appcore(root, RecordingRunner(), "apply", "--disk-wait", "0") == 0
    assert "[mysqld]\nread_only=ON\n" in (root / MODE).read_text()


def test_a_writable_member_stays_writable_across_boots(root: Path, member, capsys) -> None:
    """rr mode --writable sets the running server and the file; the next apply keeps it."""
    assert appcore(root, RecordingRunner(), "apply", "--disk-wait", "0") == 0
    member.sql("SET GLOBAL read_only = ON")
    capsys.readouterr()
    assert appcore(root, RecordingRunner(active=["mysql.service"]), "rr", "mode", "--writable") == 0
    assert json.loads(capsys.readouterr().out) == {"read_only": False, "server": "set"}
    assert server_read_only(member) == "0"
    assert appcore(root, RecordingRunner(), "apply", "--disk-wait", "0") == 0
    assert "[mysqld]\nread_only=OFF\n" in (root / MODE).read_text()


def test_ready_judges_the_server_by_the_fleets_mode(root: Path, member, capsys) -> None:
    """Ready when @@read_only is the recorded mode; a server writable behind the fleet's back
    is not ready, and says which file holds the mode."""
    assert appcore(root, RecordingRunner(), "apply", "--disk-wait", "0") == 0
    member.sql("SET GLOBAL read_only = ON")
    assert ready(root, capsys) == {"problems": [], "ready": True, "role": "MYSQL_RR_7D"}
    member.sql("SET GLOBAL read_only = OFF")
    assert ready(root, capsys)["problems"] == [
        "read_only is OFF but /data/db/conf/appcore-rr-mode.cnf says ON (appcore rr mode)"
    ]
    member.server.stop()
    assert ready(root, capsys)["problems"] == ["mysql.service does not answer SQL"]


def test_the_mode_of_a_stopped_server_is_kept_for_its_start(root: Path, capsys) -> None:
    """mysql.service not running: the file changes, the server is left to read it at start."""
    assert appcore(root, RecordingRunner(), "apply", "--disk-wait", "0") == 0
    capsys.readouterr()
    assert appcore(root, RecordingRunner(), "rr", "mode", "--writable") == 0
    assert json.loads(capsys.readouterr().out) == {
        "read_only": False,
        "server": "mysql.service not running",
    }
    assert appcore(root, RecordingRunner(), "rr", "mode") == 0
    assert json.loads(capsys.readouterr().out) == {"read_only": False}


@pytest.mark.parametrize(
    "value",
    [{"kind": "scylla", "defaults_file": "/etc/my.cnf"}, {"kind": "mysql"}, "mysql"],
)
def test_catalogue_refuses_a_bad_round_robin_entry(tmp_path: Path, value: object) -> None:
    """An unknown kind, a missing defaults_file or a bare string: refused naming file and field."""
    doc = json.loads(CATALOGUE.read_text())
    doc["roles"]["MYSQL_RR_3M"]["round_robin"] = value
    bad = tmp_path / "roles.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(CatalogueError, match=rf"{bad}: roles\.MYSQL_RR_3M\.round_robin: must be"):
        load_catalogue(str(bad), str(tmp_path / "none"), str(tmp_path / "none"))


def test_a_garbled_mode_file_is_named(root: Path, capsys) -> None:
    """A mode file without one read_only=ON|OFF line: rr mode fails naming the file."""
    assert appcore(root, RecordingRunner(), "apply", "--disk-wait", "0") == 0
    (root / MODE).write_text("[mysqld]\nread_only=maybe\n")
    assert appcore(root, RecordingRunner(), "rr", "mode") != 0
    assert "/data/db/conf/appcore-rr-mode.cnf: expected one line read_only=ON|OFF" in (
        capsys.readouterr().err
    )


def test_rr_mode_on_another_role_is_refused(tmp_path: Path, capsys) -> None:
    """A node whose role is not round-robin: rr mode exits non-zero and says so."""
    root = make_root(tmp_path, services=["hazelcast.service"])
    (root / "etc/appcore/role").write_text("HAZELCAST\n")
    add_smbios(root, ["appcore:ip=10.20.0.11", "appcore:peers=10.20.0.11,10.20.0.12"])
    attach_disk(root, "DATA_MG", make_image(tmp_path / "mg.img", "blank"))
    assert appcore(root, RecordingRunner(), "apply", "--disk-wait", "0") == 0
    assert appcore(root, RecordingRunner(), "rr", "mode", "--writable") != 0
    assert "role HAZELCAST is not a round-robin member" in capsys.readouterr().err
