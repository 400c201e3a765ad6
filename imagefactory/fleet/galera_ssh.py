"""A Galera member as the fleet reaches it: App-Core's `appcore galera …` over SSH as `ops`
(the rollout's key), one connection per call, each answer JSON."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from imagefactory.fleet.galera import ClusterError, Report
from imagefactory.fleet.health import ADMIN_USER, ssh_address
from imagefactory.fleet.hostkeys import HostKeyRefused, connect
from imagefactory.fleet.model import Fleet
from imagefactory.fleet.nodes import Node
from imagefactory.guest.ssh import quiet_paramiko

TIMEOUT_S = 30.0
START_TIMEOUT_S = 900.0  # a joiner's start waits for its state transfer


@dataclass(frozen=True)
class SshMember:
    fleet: Fleet
    node: Node
    key: Path
    # The last reason this member gave no position, so a wait prints each new reason once.
    _silence: list[str] = field(default_factory=list, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.node.name

    def _appcore(self, args: list[str], timeout: float = TIMEOUT_S) -> tuple[int, str, str]:
        """(exit status, stdout, stderr): App-Core answers JSON on stdout, says why on stderr."""
        quiet_paramiko()
        address = ssh_address(self.fleet, self.node)
        client = connect(self.fleet, self.node, address, ADMIN_USER, self.key, TIMEOUT_S)
        try:
            _, out, err = client.exec_command(
                "sudo -n appcore galera " + shlex.join(args), timeout=timeout
            )
            text = out.read().decode(errors="replace")
            why = err.read().decode(errors="replace")
            return out.channel.recv_exit_status(), text, why
        finally:
            client.close()

    def report(self) -> Report | None:
        """None when the member cannot be reached or gives no position (the reason is
        printed when it changes: a member that answers with an error is not just booting)."""
        try:
            rc, text, err = self._appcore(["position"], timeout=120)  # --wsrep-recover may run
            if rc == 0:
                return Report.from_json(json.loads(text))
            why = f"appcore galera position exit {rc}: {_last_line(err)}"
        except (paramiko.SSHException, OSError, EOFError, ValueError) as exc:
            # a refused host key names both fingerprints: say it, it is not "still booting"
            why = (
                str(exc)
                if isinstance(exc, HostKeyRefused)
                else f"no answer over SSH ({type(exc).__name__})"
            )
        if why not in self._silence:
            self._silence[:] = [why]
            print(f"  {self.name}: no position yet ({why})", flush=True)
        return None

    def bootstrap(self, expect: Report) -> None:
        rc, _, err = self._appcore(["bootstrap", f"--expect={expect.uuid}:{expect.seqno}"], 600)
        if rc != 0:
            raise ClusterError(
                f"{self.name}: appcore galera bootstrap failed (exit {rc}): {_last_line(err)}"
            )

    def join(self) -> None:
        rc, _, err = self._appcore(["join"], START_TIMEOUT_S)
        if rc != 0:
            raise ClusterError(
                f"{self.name}: appcore galera join failed (exit {rc}): {_last_line(err)}"
            )

    def ready(self) -> list[str]:
        members = len(self.node.peers)
        try:
            _, text, _ = self._appcore(["ready", f"--members={members}"])
            return [str(p) for p in json.loads(text).get("problems", ["no answer"])]
        except (paramiko.SSHException, OSError, EOFError, ValueError) as exc:
            return [f"no answer over SSH ({type(exc).__name__}: {exc})"]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
