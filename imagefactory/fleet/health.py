"""The rollout's health gate: is a node's role configured and are its services active?

Asked over SSH as the `ops` admin (key from `rollout.ssh_identity`; its public half reaches the
VM as an SMBIOS string at every boot), the way an operator would: `sudo -n appcore status
--json`, then `systemctl is-active` for each service App-Core started. A bridged VM is reached
at its fleet IP; a user-network VM (tests, labs) at its forwarded 127.0.0.1 port.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from imagefactory.fleet import hostkeys
from imagefactory.fleet.domain import ssh_port
from imagefactory.fleet.hypervisor import FleetError
from imagefactory.fleet.model import Fleet, NetworkKind
from imagefactory.fleet.nodes import Node
from imagefactory.guest.ssh import quiet_paramiko, run_command

ADMIN_USER = "ops"


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str
    final: bool = False  # App-Core finished and failed: waiting longer cannot help


HealthCheck = Callable[[Node], Health]


@dataclass(frozen=True)
class Gate:
    """What a rollout asks of the nodes: `wait` after a start (until ready, bounded), `look`
    once at every other member right before a shutdown and after a node came back (None:
    libvirt's "running" is all it checks), `prestop` before a planned stop."""

    wait: HealthCheck
    look: HealthCheck | None = None
    prestop: Callable[[Node], None] | None = None


def ssh_address(fleet: Fleet, node: Node) -> tuple[str, int]:
    if fleet.hypervisors[node.host].network.kind is NetworkKind.USER:
        return "127.0.0.1", ssh_port(fleet, node)
    return str(node.ip), 22


def probe(fleet: Fleet, node: Node, key: Path, timeout: float = 15.0) -> Health:
    """One look: configured with the expected role, every role service active."""
    host, port = ssh_address(fleet, node)
    quiet_paramiko()  # boot-time resets are expected
    try:
        client = hostkeys.connect(fleet, node, (host, port), ADMIN_USER, key, timeout)
        try:
            return _look(client, node, timeout)
        finally:
            client.close()
    except hostkeys.HostKeyRefused as exc:  # a changed key fails the gate at once
        return Health(False, f"no SSH to {host}:{port} ({exc})", final=exc.final)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        return Health(False, f"no SSH to {host}:{port} ({type(exc).__name__}: {exc})")


def _look(client: paramiko.SSHClient, node: Node, timeout: float) -> Health:
    """Ready by the role's own meaning (`appcore ready`: a Galera member Primary, Synced and
    with every member in; otherwise its services active). A Galera member whose database is
    not running yet is told to join (`appcore poststart`): the fleet starts it, not the boot."""
    rc, text = run_command(client, "sudo -n appcore ready --json", timeout)
    try:
        report = json.loads(text)
    except ValueError:  # an App-Core without `ready` (an image from before it): as it was
        return _look_by_status(client, node, timeout)
    if report.get("role") not in (None, node.group.role):
        return Health(
            False, f"appcore configured role {report.get('role')}, expected {node.group.role}"
        )
    problems = [str(p) for p in report.get("problems") or []]
    if report.get("ready") and rc == 0:
        return Health(True, f"ready as {node.group.role}")
    if problems == ["the server is not running"] and "cluster_size" in report:
        run_command(client, "sudo -n appcore poststart", timeout)
        return Health(False, "its database was started to join the Galera cluster")
    if report.get("poststart"):  # e.g. a Redpanda broker still in maintenance mode
        rc, out = run_command(client, "sudo -n appcore poststart 2>&1", timeout)
        done = "done" if rc == 0 else f"failed (exit {rc}): {out.strip()[-300:]}"
        return Health(False, f"{report['poststart']}: appcore poststart {done}")
    final = any(p.startswith("appcore status failed") for p in problems)
    return Health(False, "not ready: " + "; ".join(problems or ["no reason given"]), final)


def _look_by_status(client: paramiko.SSHClient, node: Node, timeout: float) -> Health:
    rc, text = run_command(client, "sudo -n appcore status --json", timeout)
    try:
        state = json.loads(text).get("state") or {}
    except ValueError:
        return Health(False, f"appcore status (exit {rc}) printed no JSON")
    if state.get("status") != "configured":
        return Health(
            False,
            f"appcore: {state.get('status')}: {state.get('error')}",
            final=state.get("status") == "failed",
        )
    if state.get("role") != node.group.role:
        return Health(
            False, f"appcore configured role {state.get('role')}, expected {node.group.role}"
        )
    services = [str(s) for s in state.get("services") or []]
    if services:
        rc, text = run_command(client, "systemctl is-active " + shlex.join(services), timeout)
        if rc != 0:
            states = dict(zip(services, text.split(), strict=False))
            return Health(False, f"services not active: {states}")
    return Health(
        True,
        f"configured as {node.group.role}, services active: {', '.join(services) or 'none'}",
    )


def check_identity(fleet: Fleet) -> None:
    """The gate's key must load (exists, private, no passphrase) before any VM goes down."""
    key = fleet.rollout.ssh_identity
    where = f"{fleet.path}: .rollout.ssh_identity"
    if key is None:
        raise FleetError(f"{where} is not set: the health gate could not log in to a VM")
    try:
        paramiko.Ed25519Key.from_private_key_file(str(key))
    except FileNotFoundError:
        raise FleetError(f"{where}: {key} does not exist") from None
    except paramiko.PasswordRequiredException:
        raise FleetError(
            f"{where}: {key} needs a passphrase; use a key without one (readable by root only)"
        ) from None
    except (paramiko.SSHException, OSError, ValueError):
        try:
            paramiko.RSAKey.from_private_key_file(str(key))
        except (paramiko.SSHException, OSError, ValueError) as exc:
            raise FleetError(f"{where}: {key} is not a usable private key ({exc})") from None


# App-Core waits up to 600 s for a drain or a maintenance-mode transfer (appcore.roleready).
PRESTOP_TIMEOUT_S = 660.0


def ssh_gate(fleet: Fleet, timeout_s: float, say: Callable[[str], None]) -> Gate:
    """The production gate: SSH as `ops` to the node's fleet address."""
    key = fleet.rollout.ssh_identity

    def look(node: Node) -> Health:
        if key is None:
            return Health(False, f"{fleet.path}: .rollout.ssh_identity is not set")
        return probe(fleet, node, key)

    def prestop(node: Node) -> None:
        """The role's pre-stop step; a refusal stops the cluster's rollout with the node
        still running its old version (a drain that did not finish is no time to stop)."""
        if key is None:
            return
        try:
            client = hostkeys.connect(fleet, node, ssh_address(fleet, node), ADMIN_USER, key, 15.0)
            try:
                rc, out = run_command(client, "sudo -n appcore prestop 2>&1", PRESTOP_TIMEOUT_S)
            finally:
                client.close()
        except hostkeys.HostKeyRefused as exc:  # not the node, or not provably: never stop it
            raise FleetError(f"{exc}; the node was not stopped") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            say(f"  {node.name}: pre-stop step not run ({type(exc).__name__}: {exc})")
            return
        if rc != 0 and "invalid choice" not in out:  # an App-Core from before prestop: none
            raise FleetError(
                f"{node.name}: appcore prestop failed (exit {rc}): {out.strip()[-400:]}; "
                "the node was not stopped"
            )

    return Gate(ssh_health_check(fleet, timeout_s, say), look, prestop)


def ssh_health_check(fleet: Fleet, timeout_s: float, say: Callable[[str], None]) -> HealthCheck:
    """Wait up to timeout_s for a node to pass; poll every 5 s."""
    key = fleet.rollout.ssh_identity

    def check(node: Node) -> Health:
        if key is None:
            return Health(
                False,
                f"{fleet.path}: .rollout.ssh_identity is not set: the health gate cannot log in",
            )
        started = time.monotonic()
        last = Health(False, "not probed")
        while time.monotonic() - started < timeout_s:
            last = probe(fleet, node, key)
            if last.ok:
                say(
                    f"  {node.name}: healthy after {time.monotonic() - started:.0f} s "
                    f"({last.detail})"
                )
                return last
            if last.final:
                return last
            time.sleep(5)
        return Health(False, f"not healthy within {timeout_s:.0f} s: {last.detail}")

    return check
