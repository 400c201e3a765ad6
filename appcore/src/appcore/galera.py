"""Galera members (PXC on OL8, MariaDB on the stand-in): where this member stands, whether it
is ready, and the only two ways its database starts.

A Galera database never starts on its own judgement: it either joins a Primary component that
exists, or bootstraps a new one because the fleet chose this member after every member
reported its position (uuid and seqno of the last committed write). Starting a member with
less data as the bootstrap node throws away what the others committed, so `bootstrap`
re-reads the position right before it acts and refuses when it is not the one the fleet chose.
"""

import fcntl
import os
import pwd
import re
import tempfile
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional

from appcore.errors import AppcoreError
from appcore.runner import Runner

ZERO_UUID = "00000000-0000-0000-0000-000000000000"
SYNCED = "4"  # wsrep_local_state: 1 joining, 2 donor/desynced, 3 joined, 4 synced
_RECOVERED = re.compile(r"Recovered position:\s*([0-9a-f-]{36}):(-?\d+)")
_STATES = {"1": "joining", "2": "donor/desynced", "3": "joined, catching up", "4": "synced"}


class GaleraError(AppcoreError):
    """A Galera step refused or failed; nothing was started."""

    exit_code = 7


class Flavour(NamedTuple):
    """What differs between Galera distributions: how a new cluster is started, the server
    binary that recovers a position, and whether a member can be put in maintenance."""

    name: str
    start: List[str]  # starts the server to join the cluster its config names
    bootstrap: List[str]  # starts it as the first member of a new Primary component
    server: str
    maint_mode: bool
    # Makes the system tables in an empty data directory before a bootstrap (None: the
    # flavour's own unit does it, as PXC's mysqld_pre_systemd does); {defaults} is the config.
    initialize: Optional[List[str]] = None
    # The OS user the server runs as under its unit (User=mysql): App-Core runs as root, and
    # the server refuses to run as root unless a config names that user.
    server_user: Optional[str] = None


FLAVOURS = {
    "pxc": Flavour(
        "pxc",
        ["systemctl", "start", "mysql.service"],
        ["systemctl", "start", "mysql@bootstrap.service"],
        "mysqld",
        True,
        server_user="mysql",
    ),
    # Debian's mariadb@bootstrap unit only points at galera_new_cluster.
    "mariadb": Flavour(
        "mariadb",
        ["systemctl", "start", "mariadb.service"],
        ["galera_new_cluster"],
        "mariadbd",
        False,
        [
            "mariadb-install-db",
            "--defaults-file={defaults}",
            "--user=mysql",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ],
        "mysql",
    ),
}


class Position(NamedTuple):
    """A member's place in the cluster's history; seqno -1 means unknown."""

    uuid: str
    seqno: int
    safe_to_bootstrap: bool
    source: str  # "grastate", "wsrep-recover" or "none" (never joined a cluster)

    @property
    def has_data(self) -> bool:
        return self.uuid != ZERO_UUID and self.seqno >= 0

    def label(self) -> str:
        if self.uuid == ZERO_UUID:
            return "no cluster state (never joined)"
        return "{}:{}{}".format(
            self.uuid, self.seqno, " safe_to_bootstrap" if self.safe_to_bootstrap else ""
        )

    def as_dict(self) -> Dict[str, object]:
        return {
            "uuid": self.uuid,
            "seqno": self.seqno,
            "safe_to_bootstrap": self.safe_to_bootstrap,
            "source": self.source,
            "has_data": self.has_data,
        }


def read_grastate(text: str) -> Position:
    """Parse grastate.dat (`uuid:`, `seqno:`, `safe_to_bootstrap:` lines)."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not key.startswith("#"):
            fields[key.strip()] = value.strip()
    try:
        return Position(
            fields.get("uuid", ZERO_UUID),
            int(fields.get("seqno", "-1")),
            fields.get("safe_to_bootstrap", "0") == "1",
            "grastate",
        )
    except ValueError as exc:
        raise GaleraError(f"grastate.dat: unreadable seqno ({exc})") from exc


def parse_recovered(log: str) -> Optional[Position]:
    """The position `--wsrep-recover` wrote to its error log, if it found one."""
    found = _RECOVERED.findall(log)
    if not found:
        return None
    uuid, seqno = found[-1]
    return Position(uuid, int(seqno), False, "wsrep-recover")


class Member:
    """This member's database: its data directory, config and client, and its flavour."""

    def __init__(self, runner: Runner, flavour: Flavour, defaults_file: str, datadir: str) -> None:
        self.runner = runner
        self.flavour = flavour
        self.defaults_file = defaults_file
        self.datadir = datadir

    @property
    def grastate(self) -> str:
        return os.path.join(self.datadir, "grastate.dat")

    def position(self) -> Position:
        """From grastate.dat; when it has no seqno (a crash, or a crash so soon after a state
        transfer that it still says "never joined") from `--wsrep-recover`, which reads the
        storage engine and must only run while the server is stopped. A data directory with
        no database in it at all has never joined."""
        saved = Position(ZERO_UUID, -1, False, "none")
        if os.path.exists(self.grastate):
            with open(self.grastate) as fh:
                saved = read_grastate(fh.read())
        if saved.seqno >= 0:
            return saved
        if not self.has_database():
            return saved
        if self.is_running():
            raise GaleraError("the server is running: its position comes from wsrep status")
        with tempfile.TemporaryDirectory(prefix="appcore-recover-") as tmp:
            log = os.path.join(tmp, "recover.log")
            argv = [
                self.flavour.server,
                f"--defaults-file={self.defaults_file}",
                "--wsrep-recover",
                f"--log-error={log}",
            ]
            user = self._server_user()
            if user is not None:
                os.chown(tmp, user.pw_uid, user.pw_gid)  # the server writes its log there
                argv.append(f"--user={user.pw_name}")
            result = self.runner.run(argv, check=False)
            text = ""
            if os.path.exists(log):
                with open(log) as fh:
                    text = fh.read()
        recovered = parse_recovered(text + result.stderr)
        if recovered is None:
            tail = (text or result.stderr).strip().splitlines()[-3:]
            raise GaleraError(
                "--wsrep-recover found no position (exit {}): {}".format(
                    result.returncode, " | ".join(tail) or "no output"
                )
            )
        return recovered._replace(safe_to_bootstrap=saved.safe_to_bootstrap)

    def status(self) -> Dict[str, str]:
        """SHOW GLOBAL STATUS LIKE 'wsrep_%' through the local socket (empty: not running)."""
        argv = [
            "mysql",
            f"--defaults-file={self.defaults_file}",
            "-N",
            "-B",
            "-e",
            "SHOW GLOBAL STATUS LIKE 'wsrep_%'",
        ]
        result = self.runner.run(argv, check=False)
        if result.returncode != 0:
            return {}
        pairs = (line.split("\t", 1) for line in result.stdout.splitlines() if "\t" in line)
        return dict(pairs)

    def is_running(self) -> bool:
        """Answering SQL, or a server process working in this data directory: one that is
        starting or receiving a state transfer does not answer yet, and nothing else may
        touch the directory meanwhile (no --wsrep-recover, no grastate.dat write)."""
        return bool(self.status()) or bool(self.server_pids())

    def server_pids(self) -> List[int]:
        """The flavour's server processes whose working directory is this data directory
        (the server changes into it first thing; several members may share one host)."""
        want = os.path.realpath(self.datadir)
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/comm") as fh:
                    if fh.read().strip() != self.flavour.server:
                        continue
                if os.path.realpath(os.readlink(f"/proc/{entry}/cwd")) == want:
                    pids.append(int(entry))
            except OSError:
                continue  # gone meanwhile, or not ours to read
        return pids

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """One Galera step at a time on this member: a second `appcore poststart` (the gate
        retried) waits for the first one's start instead of starting the server again."""
        lock = os.path.join(os.path.dirname(self.datadir.rstrip("/")), ".appcore-galera.lock")
        with open(lock, "a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def report(self) -> Dict[str, object]:
        """What the fleet decides on: the live position of a running server (and whether it
        is in a Primary component), else the stored or recovered one. A server that runs but
        does not answer yet (starting, in a state transfer) is running with no position."""
        status = self.status()
        if status:
            return {
                "uuid": status.get("wsrep_cluster_state_uuid", ZERO_UUID),
                "seqno": int(status.get("wsrep_last_committed", "-1")),
                "running": True,
                "primary": status.get("wsrep_cluster_status") == "Primary",
            }
        if self.server_pids():
            return {"uuid": ZERO_UUID, "seqno": -1, "running": True, "primary": False}
        return dict(self.position().as_dict(), running=False, primary=False)

    def locked_report(self) -> Dict[str, object]:
        """report() after any other Galera step here: at boot `appcore apply` may be running
        `--wsrep-recover` (slow after a power cut), whose server process a second report
        would take for a running server outside any Primary component."""
        if not os.path.isdir(os.path.dirname(self.datadir.rstrip("/"))):
            return self.report()  # no data disk mounted: nothing can be running on it
        with self.exclusive():
            return self.report()

    def bootstrap(self, expect: Position) -> None:
        """Start a new Primary component here, only if this member still is where the fleet
        saw it (same uuid and seqno): data committed meanwhile elsewhere is never lost."""
        with self.exclusive():
            self._bootstrap(expect)

    def _bootstrap(self, expect: Position) -> None:
        if self.is_running():
            raise GaleraError("the server is already running; nothing to bootstrap")
        now = self.position()
        if (now.uuid, now.seqno) != (expect.uuid, expect.seqno):
            raise GaleraError(
                f"refusing to bootstrap: the fleet chose this member at {expect.label()}, "
                f"it is now at {now.label()}"
            )
        self.prepare()
        if now.source == "none" and self.flavour.initialize and not self.has_database():
            self.runner.run(
                [a.format(defaults=self.defaults_file) for a in self.flavour.initialize]
            )
        if now.uuid != ZERO_UUID:
            # After a crash grastate.dat says seqno -1 and nobody is safe to bootstrap: the
            # recovered position keeps the cluster's history (peers catch up by IST), and
            # the mark lets the server start a new component from it.
            self._write_grastate(now._replace(safe_to_bootstrap=True))
        self.runner.run(self.flavour.bootstrap)

    def join(self) -> None:
        """Start the server to join the existing Primary component (the fleet checked it is
        there); a member that finds none fails to start rather than forming its own."""
        with self.exclusive():
            self._join()

    def _join(self) -> None:
        if self.is_running():
            return
        self.prepare()  # a joiner's empty data directory is filled by the state transfer
        now = self.position()
        if now.uuid != ZERO_UUID and now.source == "wsrep-recover":
            self._write_grastate(now)  # what the distributions' start scripts pass as a flag
        self.runner.run(self.flavour.start)

    def _server_user(self) -> "Optional[pwd.struct_passwd]":
        """The server's own user when App-Core runs as root (None in tests run as a user)."""
        if self.flavour.server_user is None or os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(self.flavour.server_user)
        except KeyError as exc:
            raise GaleraError(f"no user {self.flavour.server_user!r} for the server") from exc

    def has_database(self) -> bool:
        return any(os.path.exists(os.path.join(self.datadir, f)) for f in ("ibdata1", "mysql"))

    def prepare(self) -> None:
        """The data directory and the tmp and log directories the role's config puts beside
        it (mysql-cluster.cnf.tmpl), made for the server's user: a fresh data disk has none.
        Directories that exist are left as they are."""
        try:
            user = pwd.getpwnam("mysql")
        except KeyError:
            user = None  # no server package here (unit tests): ownership is not ours to set
        parent = os.path.dirname(self.datadir.rstrip("/"))
        for path in (self.datadir, os.path.join(parent, "tmp"), os.path.join(parent, "log")):
            if os.path.isdir(path):
                continue
            os.makedirs(path, 0o750)
            if user is not None:
                os.chown(path, user.pw_uid, user.pw_gid)

    def _write_grastate(self, position: Position) -> None:
        safe = 1 if position.safe_to_bootstrap else 0
        text = (
            "# GALERA saved state\nversion: 2.1\n"
            f"uuid:    {position.uuid}\nseqno:   {position.seqno}\nsafe_to_bootstrap: {safe}\n"
        )
        tmp = self.grastate + ".appcore"
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        # The server rewrites it at every start and refuses to start when it cannot.
        owner = os.stat(self.datadir)
        os.chown(tmp, owner.st_uid, owner.st_gid)
        os.chmod(tmp, 0o660)
        os.replace(tmp, self.grastate)


def member_of(runner: Runner, config: Dict[str, str], path: Callable[[str], str] = str) -> Member:
    """The member a role's catalogue entry describes ({"flavour", "datadir", "defaults_file"});
    `path` maps its absolute paths into the host root App-Core works on."""
    return Member(
        runner, FLAVOURS[config["flavour"]], path(config["defaults_file"]), path(config["datadir"])
    )


def readiness(status: Dict[str, str], members: int) -> List[str]:
    """Why a member is not ready to carry its share (empty: ready): Primary component,
    Synced, wsrep_ready and connected, and every member of the cluster in it."""
    if not status:
        return ["the server is not running"]
    problems = []
    if status.get("wsrep_cluster_status") != "Primary":
        problems.append(
            "not in a Primary component (wsrep_cluster_status={})".format(
                status.get("wsrep_cluster_status", "?")
            )
        )
    state = status.get("wsrep_local_state", "?")
    if state != SYNCED:
        problems.append(
            "not synced: {} (wsrep_local_state={}, {})".format(
                _STATES.get(state, "unknown"), state, status.get("wsrep_local_state_comment", "?")
            )
        )
    for flag in ("wsrep_ready", "wsrep_connected"):
        if status.get(flag) != "ON":
            problems.append(f"{flag}={status.get(flag, '?')}")
    size = status.get("wsrep_cluster_size", "0")
    if size != str(members):
        problems.append(f"cluster size {size}, expected {members} members")
    return problems


STARTING = "the server is starting or receiving a state transfer (no SQL answer yet)"


def ready_report(status: Dict[str, str], members: int, starting: bool = False) -> Dict[str, object]:
    """What `appcore ready --json` prints for a Galera member; `starting`: a server process
    works in the data directory (the fleet then waits instead of starting it again)."""
    problems = [STARTING] if starting and not status else readiness(status, members)
    return {
        "ready": not problems,
        "problems": problems,
        "cluster_state_uuid": status.get("wsrep_cluster_state_uuid"),
        "cluster_size": status.get("wsrep_cluster_size"),
        "local_state": status.get("wsrep_local_state_comment"),
        "last_committed": status.get("wsrep_last_committed"),
    }
