"""A real Galera cluster without VMs: mariadbd processes (Debian's mariadb-server, galera-4
and mariadb-backup) on their own loopback addresses 127.0.X.1..N, each with its data dir.

There is no systemd here, so `python -m tests.galerakit start CNF [--wsrep-new-cluster]`
stands in for `systemctl start`: it starts mariadbd in its own session and returns once the
server answers SQL (0) or has exited (1, with its log's tail), as a notify unit's start does.
App-Core's Galera code gets these commands through its Flavour; everything else is real.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 180  # a joiner's first start includes a full state transfer (SST)
APPCORE_SRC = Path(__file__).resolve().parents[1] / "appcore" / "src"
if str(APPCORE_SRC) not in sys.path:  # App-Core is not installed in the venv
    sys.path.insert(0, str(APPCORE_SRC))

from appcore.runner import Runner  # noqa: E402

from appcore import galera  # noqa: E402
from imagefactory.fleet.galera import Report  # noqa: E402
from tests.prereq import missing  # noqa: E402


@dataclass(frozen=True)
class Node:
    """One member: its address and files (the server's and the client's config is one file)."""

    name: str
    ip: str
    root: Path

    @property
    def cnf(self) -> Path:
        return self.root / "my.cnf"

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "error.log"

    @property
    def pidfile(self) -> Path:
        return self.root / "mariadbd.pid"

    def start_argv(self, new_cluster: bool = False) -> list[str]:
        extra = ["--wsrep-new-cluster"] if new_cluster else []
        return [sys.executable, "-m", "tests.galerakit", "start", str(self.cnf), *extra]

    def sql(self, query: str, check: bool = True) -> str:
        done = subprocess.run(
            ["mariadb", f"--defaults-file={self.cnf}", "-N", "-B", "-e", query],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{self.name}: {query!r} failed: {done.stderr.strip()}")
        return done.stdout

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 60) -> None:
        """SIGTERM: a clean shutdown; SIGKILL: a power cut for this member."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout_s
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        self.pidfile.unlink(missing_ok=True)


def flavour(node: Node) -> galera.Flavour:
    """MariaDB's, with the launcher standing in for systemctl (no systemd here)."""
    return galera.Flavour(
        "mariadb",
        node.start_argv(),
        node.start_argv(new_cluster=True),
        "mariadbd",
        False,
        galera.FLAVOURS["mariadb"].initialize,
    )


class LocalMember:
    """The fleet's view of one member; App-Core called in this process instead of over SSH."""

    def __init__(self, node: Node, members: int, runner: Runner) -> None:
        self.name = node.name
        self.members = members
        self.member = galera.Member(runner, flavour(node), str(node.cnf), str(node.datadir))

    def report(self) -> Report | None:
        return Report.from_json(self.member.report())

    def bootstrap(self, expect: Report) -> None:
        self.member.bootstrap(galera.Position(expect.uuid, expect.seqno, False, "fleet"))

    def join(self) -> None:
        self.member.join()

    def ready(self) -> list[str]:
        return galera.readiness(self.member.status(), self.members)


def make_cluster(
    root: Path, count: int = 3, name: str = "ift", initialised: bool = True
) -> list[Node]:
    """`count` members on 127.0.X.1..count, nothing started; data directories initialised,
    or (initialised=False) not there at all, as on a fresh data disk."""
    net = random.randint(2, 250)  # its own 127.0.X.0/24, so two runs on one host do not meet
    nodes = [Node(f"n{i}", f"127.0.{net}.{i}", root / f"n{i}") for i in range(1, count + 1)]
    # Its own ports too: the SST scripts look for their listener by port number alone.
    ports = Ports(20000 + 4 * net)
    peers = ",".join(f"{n.ip}:{ports.group}" for n in nodes)
    for node in nodes:
        node.root.mkdir(parents=True)
        node.cnf.write_text(_cnf(node, peers, name, ports))
        if not initialised:
            continue
        subprocess.run(
            [
                "mariadb-install-db",
                f"--defaults-file={node.cnf}",
                "--user=root",
                "--auth-root-authentication-method=socket",
            ],
            check=True,
            capture_output=True,
        )
    return nodes


@dataclass(frozen=True)
class Ports:
    """A test cluster's ports: SQL, group communication, IST and SST, from `base` on."""

    base: int

    @property
    def sql(self) -> int:
        return self.base

    @property
    def group(self) -> int:
        return self.base + 1

    @property
    def ist(self) -> int:
        return self.base + 2

    @property
    def sst(self) -> int:
        return self.base + 3


def _cnf(node: Node, peers: str, name: str, ports: Ports) -> str:
    socket = node.root / "mariadbd.sock"
    return f"""[client]
socket={socket}
user=root

[mariadbd]
datadir={node.datadir}
socket={socket}
pid-file={node.pidfile}
log-error={node.log}
bind-address={node.ip}
port={ports.sql}
user=root
skip-name-resolve
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=32M
innodb_log_file_size=16M
wsrep_on=ON
wsrep_provider=/usr/lib/galera/libgalera_smm.so
wsrep_cluster_name={name}
wsrep_cluster_address=gcomm://{peers}
wsrep_node_address={node.ip}
wsrep_node_name={node.name}
wsrep_provider_options="gmcast.listen_addr=tcp://{node.ip}:{ports.group};ist.recv_addr={node.ip}:{ports.ist};gcache.size=32M"
wsrep_sst_method=mariabackup
wsrep_sst_auth=root:
wsrep_sst_receive_address={node.ip}:{ports.sst}
"""


@contextmanager
def running_cluster(root: Path, initialised: bool = True) -> Iterator[list[Node]]:
    """make_cluster() for a test (the tools are checked first: missing fails in CI and
    skips elsewhere); every member is stopped at the end, whatever happened."""
    absent = tools_missing()
    if absent:
        missing(f"MariaDB Galera tools {absent}", "bootstrap.sh installs them (mariadb-server ...)")
    made = make_cluster(root, initialised=initialised)
    try:
        yield made
    finally:
        stop_all(made)


def stop_all(nodes: list[Node]) -> None:
    for node in nodes:
        node.stop(signal.SIGKILL)


def tools_missing() -> list[str]:
    need = ["mariadbd", "mariadb", "mariadb-install-db", "mariabackup", "socat"]
    missing = [t for t in need if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]
    if not Path("/usr/lib/galera/libgalera_smm.so").exists():
        missing.append("galera-4 (/usr/lib/galera/libgalera_smm.so)")
    return missing


def _start(cnf: Path, extra: list[str]) -> int:
    """Start mariadbd detached; wait until it answers SQL (0) or exits (1)."""
    server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    log = cnf.parent / "start.out"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [server, f"--defaults-file={cnf}", *extra],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # outlives this launcher, like a service
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (cnf.parent / "error.log").read_text(errors="replace").splitlines()[-8:]
            print(f"mariadbd exited with {proc.returncode}:", *tail, sep="\n", file=sys.stderr)
            return 1
        ping = subprocess.run(
            ["mariadb", f"--defaults-file={cnf}", "-N", "-e", "SELECT 1"],
            capture_output=True,
            check=False,
        )
        if ping.returncode == 0:
            return 0
        time.sleep(0.5)
    proc.kill()
    print(f"mariadbd did not answer within {START_TIMEOUT_S} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "start":
        sys.exit("usage: python -m tests.galerakit start CNF [mariadbd args]")
    sys.exit(_start(Path(sys.argv[2]), sys.argv[3:]))
