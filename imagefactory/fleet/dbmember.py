"""How the rotation reaches a round-robin database member: a small protocol, and its SSH
implementation (paramiko as `ops`, like galera_ssh). Store credentials never go to the member:
the backup leaves it on the command's stdout and this host puts it into the store."""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import paramiko

from imagefactory.errors import FactoryError
from imagefactory.fleet.health import ADMIN_USER, ssh_address
from imagefactory.fleet.hostkeys import connect
from imagefactory.fleet.model import Fleet
from imagefactory.fleet.nodes import Node
from imagefactory.guest.ssh import quiet_paramiko

# App-Core knows the member's server, data directory (on its data disk) and backup tool
# (XtraBackup on PXC, Mariabackup on the stand-in): the fleet asks it, never a path or tool.
BACKUP_ARGV = ["appcore", "rr", "backup"]
TIMEOUT_S = 60.0


def mode_argv(read_only: bool) -> list[str]:
    return ["appcore", "rr", "mode", "--read-only" if read_only else "--writable"]


def replace_argv(action: str, node: str) -> list[str]:
    """`appcore rr purge|restore`: App-Core replaces a data directory only when told whose."""
    return ["appcore", "rr", action, f"--confirm={node}"]


class MemberError(FactoryError):
    """A member did not do what the rotation asked."""


class BackupStream(Protocol):
    def read(self, size: int = -1) -> bytes: ...

    def finish(self) -> tuple[int, str]:
        """Wait for (or, if not read to the end, stop) the command: (exit status, stderr)."""
        ...


class DbMember(Protocol):
    @property
    def name(self) -> str: ...

    def open_backup(self) -> BackupStream: ...

    def sql(self, query: str) -> str: ...

    def set_read_only(self, on: bool) -> None: ...

    def purge(self) -> None:
        """An empty, initialised data directory in place of the member's; the server started."""
        ...

    def restore(self, chunks: Iterable[bytes]) -> None:
        """The xbstream `chunks` unpacked and prepared beside the data directory, swapped in,
        the server started (until the swap the member keeps its data)."""
        ...


class _ChannelStream:
    def __init__(self, client: paramiko.SSHClient, command: str) -> None:
        self._client = client
        _, self._out, self._err = client.exec_command(command)

    def read(self, size: int = -1) -> bytes:
        return bytes(self._out.read(size))

    def finish(self) -> tuple[int, str]:
        try:
            channel = self._out.channel
            if not channel.exit_status_ready() and not channel.eof_received:
                channel.close()  # not read to the end: the backup is abandoned
                return -1, "stopped before its end"
            return channel.recv_exit_status(), self._err.read().decode(errors="replace")
        finally:
            self._client.close()


@dataclass(frozen=True)
class SshDbMember:
    """A member VM: commands as `ops` with sudo, one connection per call."""

    fleet: Fleet
    node: Node
    key: Path

    @property
    def name(self) -> str:
        return self.node.name

    def _client(self) -> paramiko.SSHClient:
        quiet_paramiko()
        address = ssh_address(self.fleet, self.node)
        return connect(self.fleet, self.node, address, ADMIN_USER, self.key, TIMEOUT_S)

    def _run(self, argv: list[str], timeout: float = TIMEOUT_S) -> str:
        client = self._client()
        try:
            _, out, err = client.exec_command("sudo -n " + shlex.join(argv), timeout=timeout)
            text = out.read().decode(errors="replace")
            rc = out.channel.recv_exit_status()
            if rc != 0:
                why = err.read().decode(errors="replace").strip().splitlines()[-1:]
                raise MemberError(f"{self.name}: {argv[0]} exit {rc}: {' '.join(why)}")
            return text
        finally:
            client.close()

    def open_backup(self) -> BackupStream:
        return _ChannelStream(self._client(), "sudo -n " + shlex.join(BACKUP_ARGV))

    def sql(self, query: str) -> str:
        return self._run(["mariadb", "-N", "-B", "-e", query])

    def set_read_only(self, on: bool) -> None:
        # App-Core records the mode on the member's data disk (kept across reboots) and sets
        # the running server: `SET GLOBAL` alone would be undone by the next restart.
        self._run(mode_argv(on))

    def purge(self) -> None:
        self._run(replace_argv("purge", self.name), timeout=600)

    def restore(self, chunks: Iterable[bytes]) -> None:
        client = self._client()
        try:
            command = "sudo -n " + shlex.join(replace_argv("restore", self.name))
            stdin, out, err = client.exec_command(command)
            for chunk in chunks:  # the store's bytes go through this host, never its key
                stdin.channel.sendall(chunk)
            stdin.channel.shutdown_write()
            rc = out.channel.recv_exit_status()
            if rc != 0:
                why = err.read().decode(errors="replace").strip().splitlines()[-1:]
                raise MemberError(f"{self.name}: restore exit {rc}: {' '.join(why)}")
        finally:
            client.close()
