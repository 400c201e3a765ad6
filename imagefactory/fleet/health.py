"""The rollout's health gate: is a node's role configured and are its services active?

Asked over SSH as the `ops` admin (key from `rollout.ssh_identity`; its public half reaches the
VM as an SMBIOS string at every boot), the way an operator would: `sudo -n appcore status
--json`, then `systemctl is-active` for each service App-Core started. A bridged VM is reached
at its fleet IP; a user-network VM (tests, labs) at its forwarded 127.0.0.1 port.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from imagefactory.fleet.domain import ssh_port
from imagefactory.fleet.hypervisor import FleetError
from imagefactory.fleet.model import Fleet, NetworkKind
from imagefactory.fleet.nodes import Node

ADMIN_USER = "ops"


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str
    final: bool = False  # App-Core finished and failed: waiting longer cannot help


HealthCheck = Callable[[Node], Health]


def ssh_address(fleet: Fleet, node: Node) -> tuple[str, int]:
    if fleet.hypervisors[node.host].network.kind is NetworkKind.USER:
        return "127.0.0.1", ssh_port(fleet, node)
    return str(node.ip), 22


def _run(client: paramiko.SSHClient, command: str, timeout: float) -> tuple[int, str]:
    _, out, _ = client.exec_command(command, timeout=timeout)
    text = out.read().decode(errors="replace")
    return out.channel.recv_exit_status(), text


def probe(fleet: Fleet, node: Node, key: Path, timeout: float = 15.0) -> Health:
    """One look: configured with the expected role, every role service active."""
    host, port = ssh_address(fleet, node)
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # boot-time resets are expected
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # host keys are per boot
    try:
        client.connect(
            host,
            port=port,
            username=ADMIN_USER,
            key_filename=str(key),
            look_for_keys=False,
            allow_agent=False,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
        rc, text = _run(client, "sudo -n appcore status --json", timeout)
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
            rc, text = _run(client, "systemctl is-active " + shlex.join(services), timeout)
            if rc != 0:
                states = dict(zip(services, text.split(), strict=False))
                return Health(False, f"services not active: {states}")
        return Health(
            True,
            f"configured as {node.group.role}, services active: {', '.join(services) or 'none'}",
        )
    except (paramiko.SSHException, OSError, EOFError) as exc:
        return Health(False, f"no SSH to {host}:{port} ({type(exc).__name__}: {exc})")
    finally:
        client.close()


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
