"""SSH to a guest with one key only: the build and verify VMs (on a forwarded 127.0.0.1
port) and the fleet's health gate (a VM's fleet address) log in the same way."""

from __future__ import annotations

import logging
from pathlib import Path

import paramiko


def quiet_paramiko() -> None:
    """While a guest boots, connections are accepted and reset; paramiko would log each of
    those as a traceback."""
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)


def open_ssh(
    address: tuple[str, int],
    user: str,
    key: Path,
    timeout: float,
    policy: paramiko.MissingHostKeyPolicy | None = None,
) -> paramiko.SSHClient:
    """An SSH session to `address` (host, port), logging in as `user` with `key` only (no
    agent, no other keys). No known_hosts is read, so `policy` decides on every host key: the
    fleet passes one that checks the keys learned from the VM's console (fleet/hostkeys.py);
    without one, host keys are accepted as they come (the build and verify VMs: fresh, on a
    127.0.0.1 port of this machine, their keys made at their first boot)."""
    host, port = address
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(policy or paramiko.AutoAddPolicy())
    try:
        client.connect(
            host,
            port=port,
            username=user,
            key_filename=str(key),
            look_for_keys=False,
            allow_agent=False,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
    except BaseException:
        client.close()
        raise
    return client


def run_command(client: paramiko.SSHClient, command: str, timeout: float) -> tuple[int, str]:
    """(exit status, stdout) of one command."""
    _, out, _ = client.exec_command(command, timeout=timeout)
    text = out.read().decode(errors="replace")
    return out.channel.recv_exit_status(), text
