"""App-Core's Galera member on recorded answers: grastate.dat, --wsrep-recover's log line and
`SHOW GLOBAL STATUS LIKE 'wsrep_%'` (values as MariaDB 10.11 and PXC 8.0 print them). Each
unhealthy answer is one a running, "active" service gives while the member is not ready."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from appcore.runner import Result, Runner

from appcore import galera
from tests.prereq import missing

UUID = "139d51f5-f1cd-11f1-bdd4-a78be2f0993c"
SYNCED: dict[str, str] = {
    "wsrep_cluster_status": "Primary",
    "wsrep_local_state": "4",
    "wsrep_local_state_comment": "Synced",
    "wsrep_ready": "ON",
    "wsrep_connected": "ON",
    "wsrep_cluster_size": "3",
    "wsrep_cluster_state_uuid": UUID,
    "wsrep_last_committed": "112",
}


def test_grastate_after_a_clean_stop() -> None:
    """The last member to stop is marked safe to bootstrap, with its seqno."""
    text = (
        f"# GALERA saved state\nversion: 2.1\nuuid:    {UUID}\nseqno:   5\nsafe_to_bootstrap: 1\n"
    )
    assert galera.read_grastate(text) == galera.Position(UUID, 5, True, "grastate")


def test_grastate_after_a_crash_has_no_position() -> None:
    """seqno -1: the position must be recovered from the storage engine."""
    text = (
        f"# GALERA saved state\nversion: 2.1\nuuid:    {UUID}\nseqno:   -1\nsafe_to_bootstrap: 0\n"
    )
    position = galera.read_grastate(text)
    assert (position.seqno, position.has_data) == (-1, False)


def test_recovered_position_from_the_error_log() -> None:
    """MariaDB writes `WSREP: Recovered position: UUID:SEQNO` to --log-error."""
    log = (
        "2026-12-06 23:32:11 0 [Note] InnoDB: Buffer pool(s) load completed\n"
        f"2026-12-06 23:32:11 0 [Note] WSREP: Recovered position: {UUID}:11\n"
    )
    assert galera.parse_recovered(log) == galera.Position(UUID, 11, False, "wsrep-recover")


def test_no_recovered_position() -> None:
    assert galera.parse_recovered("[ERROR] Aborting\n") is None


class RecoverAsServer(Runner):
    """Stands in for `mariadbd --wsrep-recover`: records argv and who owns its log's directory,
    then writes the line MariaDB writes (the real server refuses to run as root)."""

    def run(self, argv: list[str], check: bool = True) -> Result:
        self.history.append(list(argv))
        if "--wsrep-recover" not in argv:
            return Result(argv, 0, "", "")  # the flavour's bootstrap: recorded only
        log = next(a.split("=", 1)[1] for a in argv if a.startswith("--log-error="))
        self.log_dir_owner = os.stat(os.path.dirname(log)).st_uid
        Path(log).write_text(f"[Note] WSREP: Recovered position: {UUID}:42\n")
        return Result(argv, 0, "", "")


def test_recover_runs_the_server_as_its_own_user(tmp_path: Path) -> None:
    """App-Core runs as root: --wsrep-recover gets --user=mysql and a log directory it owns."""
    if os.geteuid() != 0:
        pytest.skip("App-Core's root path: run as root (CI and the guest are)")
    try:
        mysql = pwd.getpwnam("mysql")
    except KeyError:
        missing("the mysql user", "bootstrap.sh installs mariadb-server")
    datadir = tmp_path / "mysql"
    (datadir / "mysql").mkdir(parents=True)
    (datadir / "grastate.dat").write_text(f"uuid: {UUID}\nseqno: -1\nsafe_to_bootstrap: 0\n")
    runner = RecoverAsServer()
    member = galera.Member(runner, galera.FLAVOURS["mariadb"], "/etc/x.cnf", str(datadir))
    member.status = lambda: {}  # type: ignore[method-assign]  # the server is stopped
    assert member.position() == galera.Position(UUID, 42, False, "wsrep-recover")
    recover = runner.history[-1]
    assert (recover[0], recover[-1]) == ("mariadbd", "--user=mysql")
    assert runner.log_dir_owner == mysql.pw_uid
    assert re.fullmatch(r"--log-error=/tmp/appcore-recover-\w+/recover.log", recover[3])


def test_a_synced_member_of_a_full_cluster_is_ready() -> None:
    assert galera.readiness(SYNCED, 3) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {
                "wsrep_local_state": "1",
                "wsrep_local_state_comment": "Joining: receiving State Transfer",
            },
            "not synced: joining (wsrep_local_state=1, Joining: receiving State Transfer)",
        ),
        (
            {"wsrep_local_state": "2", "wsrep_local_state_comment": "Donor/Desynced"},
            "not synced: donor/desynced (wsrep_local_state=2, Donor/Desynced)",
        ),
        (
            {"wsrep_cluster_status": "non-Primary", "wsrep_ready": "OFF"},
            "not in a Primary component (wsrep_cluster_status=non-Primary)",
        ),
        ({"wsrep_cluster_size": "2"}, "cluster size 2, expected 3 members"),
        ({"wsrep_connected": "OFF"}, "wsrep_connected=OFF"),
    ],
)
def test_a_running_member_that_is_not_ready(change: dict[str, str], problem: str) -> None:
    """Each answer comes from a server whose service is active: the old gate passed it."""
    assert problem in galera.readiness({**SYNCED, **change}, 3)


def test_a_stopped_server_is_not_ready() -> None:
    assert galera.readiness({}, 3) == ["the server is not running"]


def test_ready_report_names_the_cluster_state() -> None:
    report = galera.ready_report(SYNCED, 3)
    assert report == {
        "ready": True,
        "problems": [],
        "cluster_state_uuid": UUID,
        "cluster_size": "3",
        "local_state": "Synced",
        "last_committed": "112",
    }


class Recorded(Runner):
    """Records every command; `start` (the flavour's) makes `on_start` happen."""

    def __init__(self, on_start=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.on_start = on_start

    def run(self, argv: list[str], check: bool = True) -> Result:
        self.history.append(list(argv))
        if argv[0] == "mysql":
            return Result(argv, 1, "", "no server")  # nothing answers SQL
        if argv == galera.FLAVOURS["mariadb"].start and self.on_start is not None:
            self.on_start()
        return Result(argv, 0, "", "")


def starting_server(datadir: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    """A process named like the server working in the data directory, as a server is while
    it starts or receives a state transfer (it does not answer SQL yet)."""
    fake = tmp_path / "mariadbd"
    shutil.copy("/bin/sleep", fake)
    return subprocess.Popen([str(fake), "60"], cwd=datadir)


def member_at(datadir: Path, runner: Runner) -> galera.Member:
    return galera.Member(runner, galera.FLAVOURS["mariadb"], "/etc/x.cnf", str(datadir))


def test_a_server_in_a_state_transfer_counts_as_running(tmp_path: Path) -> None:
    """No SQL answer yet, but a server works in the data directory: running, no position is
    recovered beside it and join starts nothing."""
    datadir = tmp_path / "mysql"
    (datadir / "mysql").mkdir(parents=True)
    (datadir / "grastate.dat").write_text(f"uuid: {UUID}\nseqno: -1\nsafe_to_bootstrap: 0\n")
    runner = Recorded()
    member = member_at(datadir, runner)
    server = starting_server(datadir, tmp_path)
    try:
        deadline = time.monotonic() + 10
        while not member.server_pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert member.server_pids() == [server.pid]
        assert member.report() == {
            "uuid": galera.ZERO_UUID,
            "seqno": -1,
            "running": True,
            "primary": False,
        }
        with pytest.raises(galera.GaleraError, match="running"):
            member.position()
        member.join()
    finally:
        server.kill()
        server.wait()
    assert [a[0] for a in runner.history if a[0] != "mysql"] == []


def test_two_joins_at_once_start_the_server_once(tmp_path: Path) -> None:
    """The gate retried `appcore poststart` while the first was still starting the server:
    the second waits for the first and then finds it running."""
    datadir = tmp_path / "mysql"
    datadir.mkdir()
    servers: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        time.sleep(1.0)  # systemctl start blocks while the server starts
        servers.append(starting_server(datadir, tmp_path))
        time.sleep(0.5)  # until it changed into its data directory

    runner = Recorded(on_start=start)
    member = member_at(datadir, runner)
    threads = [threading.Thread(target=member.join) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    finally:
        for s in servers:
            s.kill()
            s.wait()
    assert runner.history.count(galera.FLAVOURS["mariadb"].start) == 1


def test_grastate_written_by_app_core_stays_the_servers(tmp_path: Path) -> None:
    """App-Core runs as root: the grastate.dat it writes keeps the data directory's owner,
    or the server cannot update it and refuses to start."""
    if os.geteuid() != 0:
        pytest.skip("App-Core's root path: run as root (CI and the guest are)")
    try:
        mysql = pwd.getpwnam("mysql")
    except KeyError:
        missing("the mysql user", "bootstrap.sh installs mariadb-server")
    datadir = tmp_path / "mysql"
    (datadir / "mysql").mkdir(parents=True)
    os.chown(datadir, mysql.pw_uid, mysql.pw_gid)
    (datadir / "grastate.dat").write_text(f"uuid: {UUID}\nseqno: -1\nsafe_to_bootstrap: 0\n")
    runner = RecoverAsServer()
    member = member_at(datadir, runner)
    member.status = lambda: {}  # type: ignore[method-assign]  # the server is stopped
    member.bootstrap(galera.Position(UUID, 42, False, "fleet"))
    written = os.stat(datadir / "grastate.dat")
    assert (written.st_uid, written.st_gid) == (mysql.pw_uid, mysql.pw_gid)
    assert "seqno:   42\nsafe_to_bootstrap: 1" in (datadir / "grastate.dat").read_text()


def test_a_starting_server_is_reported_as_starting_not_stopped() -> None:
    """`appcore ready` of a server in a state transfer: the fleet waits, it does not start it
    again (it starts a member only on "the server is not running")."""
    report = galera.ready_report({}, 3, starting=True)
    assert (report["ready"], report["problems"]) == (False, [galera.STARTING])
    assert galera.ready_report({}, 3)["problems"] == ["the server is not running"]


class SlowRecover(Recorded):
    """`mariadbd --wsrep-recover` as after a power cut under TCG: a server process works in
    the data directory for a while, then the recovered position is in its log."""

    def __init__(self, datadir: Path, tmp_path: Path) -> None:
        super().__init__()
        self.datadir, self.tmp_path = datadir, tmp_path

    def run(self, argv: list[str], check: bool = True) -> Result:
        if "--wsrep-recover" not in argv:
            return super().run(argv, check)
        self.history.append(list(argv))
        server = starting_server(self.datadir, self.tmp_path)
        try:
            time.sleep(1.5)
        finally:
            server.kill()
            server.wait()
        log = next(a.split("=", 1)[1] for a in argv if a.startswith("--log-error="))
        Path(log).write_text(f"[Note] WSREP: Recovered position: {UUID}:42\n")
        return Result(argv, 0, "", "")


def test_a_position_asked_during_the_boots_recover_waits_for_it(tmp_path: Path) -> None:
    """The fleet asks while `appcore apply` at boot still recovers the position: it waits and
    gets the recovered position, not "running outside a Primary component"."""
    datadir = tmp_path / "db" / "mysql"
    (datadir / "mysql").mkdir(parents=True)
    (datadir / "grastate.dat").write_text(f"uuid: {UUID}\nseqno: -1\nsafe_to_bootstrap: 0\n")
    member = member_at(datadir, SlowRecover(datadir, tmp_path))
    member._server_user = lambda: None  # type: ignore[method-assign]  # a stand-in server
    reports: dict[str, dict[str, object]] = {}

    def ask(who: str) -> None:
        reports[who] = member.locked_report()

    boot = threading.Thread(target=ask, args=("boot",))
    boot.start()
    time.sleep(0.5)  # the boot's recover is running now
    ask("fleet")
    boot.join(timeout=30)
    expected = {"uuid": UUID, "seqno": 42, "running": False, "primary": False}
    assert reports["boot"]["seqno"] == 42
    assert {k: reports["fleet"][k] for k in expected} == expected
