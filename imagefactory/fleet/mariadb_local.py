"""A mariadbd on this host, on its own loopback address and socket: the throwaway server a
backup's restore test starts on the prepared copy, and the stand-in members of the tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from imagefactory.errors import FactoryError

START_TIMEOUT_S = 120.0


class ServerError(FactoryError):
    """A local mariadbd did not start, or a statement on it failed."""


def _tool(name: str) -> str:
    exe = shutil.which(name) or (
        f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
    )
    if exe is None:
        raise ServerError(f"{name} is not installed (hint: the mariadb-server package)")
    return exe


@dataclass(frozen=True)
class LocalServer:
    """One server: `root` holds its config, socket, pid file and log; `datadir` its data."""

    root: Path
    datadir: Path
    ip: str
    port: int
    log_bin: bool = False

    @property
    def cnf(self) -> Path:
        return self.root / "my.cnf"

    @property
    def socket(self) -> Path:
        return self.root / "mariadbd.sock"

    @property
    def pidfile(self) -> Path:
        return self.root / "mariadbd.pid"

    def write_cnf(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        binlog = f"log-bin={self.root / 'binlog'}\nserver-id=1\n" if self.log_bin else ""
        self.cnf.write_text(
            f"[client]\nsocket={self.socket}\nuser=root\n\n"
            f"[mariadbd]\ndatadir={self.datadir}\nsocket={self.socket}\n"
            f"pid-file={self.pidfile}\nlog-error={self.root / 'error.log'}\n"
            f"bind-address={self.ip}\nport={self.port}\nuser=root\nskip-name-resolve\n"
            f"innodb_buffer_pool_size=32M\ninnodb_log_file_size=16M\n{binlog}"
        )

    def initialise(self) -> None:
        """An empty data directory with the system tables (root by socket only)."""
        self.write_cnf()
        self.datadir.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [
                _tool("mariadb-install-db"),
                f"--defaults-file={self.cnf}",
                "--user=root",
                "--auth-root-authentication-method=socket",
            ],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            raise ServerError(f"mariadb-install-db for {self.datadir} failed: {done.stderr!r}")

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start detached (own session); return once it answers SQL."""
        self.write_cnf()
        with (self.root / "start.out").open("ab") as out:
            proc = subprocess.Popen(
                [_tool("mariadbd"), f"--defaults-file={self.cnf}"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = (self.root / "error.log").read_text(errors="replace")[-600:]
                raise ServerError(f"mariadbd on {self.datadir} exited {proc.returncode}: {tail}")
            if self.sql("SELECT 1", check=False) is not None:
                return
            time.sleep(0.3)
        proc.kill()
        raise ServerError(f"mariadbd on {self.datadir} did not answer within {timeout_s:g} s")

    def sql(self, query: str, check: bool = True) -> str | None:
        """The statement's tab-separated output; None (check=False) when it failed."""
        done = subprocess.run(
            [_tool("mariadb"), f"--defaults-file={self.cnf}", "-N", "-B", "-e", query],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if done.returncode != 0:
            if check:
                raise ServerError(f"{query!r} on {self.socket} failed: {done.stderr.strip()}")
            return None
        return done.stdout

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def stop(self, timeout_s: float = 60.0) -> None:
        """A clean shutdown (SIGTERM), SIGKILL if it does not end in time."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.3)
        self.pidfile.unlink(missing_ok=True)
