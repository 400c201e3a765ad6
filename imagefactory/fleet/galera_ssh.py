"""A Galera member as the fleet reaches it: App-Core's `appcore galera …` over SSH as `ops`
(the rollout's key), one connection per call, each answer JSON."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

import paramiko

from imagefactory.fleet.galera import ClusterError, Report
from imagefactory.fleet.health import ADMIN_USER, ssh_address
from imagefactory.fleet.model import Fleet
from imagefactory.fleet.nodes import Node
from imagefactory.guest.ssh import open_ssh, quiet_paramiko, run_command

TIMEOUT_S = 30.0
START_TIMEOUT_S = 900.0  # a joiner's start waits for its state transfer


@dataclass(frozen=True)
class SshMember:
    fleet: Fleet
    node: Node
    key: Path

    @property
    def name(self) -> str:
        return self.node.name

    def _appcore(self, args: list[str], timeout: float = TIMEOUT_S) -> tuple[int, str]:
        quiet_paramiko()
        client = open_ssh(ssh_address(self.fleet, self.node), ADMIN_USER, self.key, TIMEOUT_S)
        try:
            return run_command(client, "sudo -n appcore galera " + shlex.join(args), timeout)
        finally:
            client.close()

    def report(self) -> Report | None:
        """None when the member cannot be reached or gives no position."""
        try:
            rc, text = self._appcore(["position"], timeout=120)  # --wsrep-recover may run
            return Report.from_json(json.loads(text)) if rc == 0 else None
        except (paramiko.SSHException, OSError, EOFError, ValueError):
            return None

    def bootstrap(self, expect: Report) -> None:
        rc, _ = self._appcore(["bootstrap", f"--expect={expect.uuid}:{expect.seqno}"], 600)
        if rc != 0:
            raise ClusterError(f"{self.name}: appcore galera bootstrap failed (exit {rc})")

    def join(self) -> None:
        rc, _ = self._appcore(["join"], START_TIMEOUT_S)
        if rc != 0:
            raise ClusterError(f"{self.name}: appcore galera join failed (exit {rc})")

    def ready(self) -> list[str]:
        members = len(self.node.peers)
        try:
            _, text = self._appcore(["ready", f"--members={members}"])
            return [str(p) for p in json.loads(text).get("problems", ["no answer"])]
        except (paramiko.SSHException, OSError, EOFError, ValueError) as exc:
            return [f"no answer over SSH ({type(exc).__name__}: {exc})"]
