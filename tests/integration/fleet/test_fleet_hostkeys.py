"""Known host keys with a fake console log and a real SSH server: real paramiko on both sides
(an in-thread paramiko server with a host key made by ssh-keygen), fingerprints written into the
node's console log the way App-Core prints them."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from imagefactory.fleet import galera_ssh, health
from imagefactory.fleet.config import load_fleet
from imagefactory.fleet.hostkeys import (
    BEGIN,
    END,
    HostKeyRefused,
    KnownHosts,
    connect,
    parse_blocks,
)
from imagefactory.fleet.hypervisor import FleetError
from imagefactory.fleet.model import Fleet
from imagefactory.fleet.nodes import Node, plan_fleet
from imagefactory.fleet.storage import layout_for
from imagefactory.guest.ssh import run_command
from tests.fleetkit import group, ops_key, three_simulated_hosts, write_fleet
from tests.prereq import require_tool

pytestmark = pytest.mark.integration
NODE = "pers-hz-01"


def host_key(directory: Path, name: str) -> tuple[paramiko.PKey, str]:
    """A fresh ed25519 host key and its fingerprint as `ssh-keygen -l -E sha256` prints it."""
    path = directory / name
    keygen = require_tool("ssh-keygen")
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    listed = subprocess.run(
        [keygen, "-l", "-E", "sha256", "-f", f"{path}.pub"], capture_output=True, text=True
    )
    return paramiko.Ed25519Key.from_private_key_file(str(path)), listed.stdout.split()[1]


class OpsOnly(paramiko.ServerInterface):
    """Lets in `ops` with the ops key; every exec answers "hello"."""

    def __init__(self, ops: paramiko.PKey) -> None:
        self.ops = ops

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = username == "ops" and key.asbytes() == self.ops.asbytes()
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_UNKNOWN

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        channel.sendall(b"hello\n")
        channel.send_exit_status(0)
        channel.shutdown_write()
        return True


@pytest.fixture
def ops(tmp_path: Path) -> Path:
    return ops_key(tmp_path).with_suffix("")


def serve(key: paramiko.PKey, ops: Path) -> Iterator[tuple[str, int]]:
    """An SSH server on 127.0.0.1 with host key `key`, one session per connection."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    user_key = paramiko.Ed25519Key.from_private_key_file(str(ops))
    transports: list[paramiko.Transport] = []

    def loop() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(conn)
            transport.add_server_key(key)
            transports.append(transport)
            try:
                transport.start_server(server=OpsOnly(user_key))
            except (paramiko.SSHException, EOFError, OSError):  # the client hung up: fine
                continue

    threading.Thread(target=loop, daemon=True).start()
    try:
        yield listener.getsockname()
    finally:
        listener.close()
        for transport in transports:
            transport.close()


@pytest.fixture
def server_key(tmp_path: Path) -> tuple[paramiko.PKey, str]:
    return host_key(tmp_path, "host_ed25519")


@pytest.fixture
def server(server_key: tuple[paramiko.PKey, str], ops: Path) -> Iterator[tuple[str, int]]:
    yield from serve(server_key[0], ops)


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    groups = {"pers-hz": group("HAZELCAST", "persistence", 3, "cluster", "hz-main", ("DATA_MG", 2))}
    return load_fleet(write_fleet(tmp_path / "fleet", three_simulated_hosts(tmp_path), groups))


def node_of(fleet: Fleet) -> Node:
    return plan_fleet(fleet).nodes[NODE]


def boot(fleet: Fleet, *fingerprints: str) -> None:
    """What libvirt's console log gets at a boot: kernel noise, App-Core's block (\\r\\n)."""
    node = node_of(fleet)
    log = layout_for(fleet.hypervisors[node.host]).console_log(NODE)
    log.parent.mkdir(parents=True, exist_ok=True)
    lines = ["[    1.2] random: crng init done", BEGIN]
    lines += [f"ssh-ed25519 {fp}" for fp in fingerprints] + [END, f"{NODE} login: "]
    with log.open("a") as fh:
        fh.write("\r\n".join(lines) + "\r\n")


def hello(fleet: Fleet, address: tuple[str, int], ops: Path) -> str:
    client = connect(fleet, node_of(fleet), address, "ops", ops, 10.0)
    try:
        return run_command(client, "true", 10.0)[1]
    finally:
        client.close()


def test_the_fingerprint_on_the_console_is_accepted(
    fleet: Fleet, server: tuple[str, int], server_key: tuple[paramiko.PKey, str], ops: Path
) -> None:
    """The key the console showed at first boot: connected, the command runs."""
    boot(fleet, server_key[1])
    assert hello(fleet, server, ops) == "hello\n"


def test_another_key_is_refused_naming_node_and_both_fingerprints(
    tmp_path: Path,
    fleet: Fleet,
    server: tuple[str, int],
    server_key: tuple[paramiko.PKey, str],
    ops: Path,
) -> None:
    """A server whose key is not the console's: refused, both fingerprints in the message."""
    _, console_fp = host_key(tmp_path, "other_ed25519")
    boot(fleet, console_fp)
    with pytest.raises(HostKeyRefused) as refused:
        hello(fleet, server, ops)
    assert str(refused.value) == (
        f"{NODE}: host key ssh-ed25519 {server_key[1]} offered at [127.0.0.1]:{server[1]} "
        f"does not match {console_fp} learned from its console (ssh-ed25519 {console_fp}): "
        "refused"
    )


def start_on(fleet: Fleet, overlay: str, fingerprint: str, new: bool = False) -> None:
    """What the fleet does around a VM start (hostkeys.start) and what the boot prints."""
    known = KnownHosts(fleet)
    if new:
        known.new_overlay(node_of(fleet), Path(overlay))
    known.booting(node_of(fleet), Path(overlay))
    boot(fleet, fingerprint)


def test_first_boot_of_a_new_overlay_learns_its_keys(
    fleet: Fleet, server_key: tuple[paramiko.PKey, str]
) -> None:
    """The first block the overlay's first boot prints is learned and written to the state;
    the previous overlay's block before it does not count."""
    start_on(fleet, "/vms/os-1.qcow2", "SHA256:oldoverlay", new=True)
    start_on(fleet, "/vms/os-2.qcow2", server_key[1], new=True)
    assert KnownHosts(fleet).expected(node_of(fleet)) == {"ssh-ed25519": server_key[1]}
    entry = KnownHosts(fleet).load(node_of(fleet).host)[NODE]
    assert (entry["overlay"], entry["known"]["/vms/os-2.qcow2"]["keys"]) == (
        "/vms/os-2.qcow2",
        {"ssh-ed25519": server_key[1]},
    )


def test_a_changed_key_on_the_same_overlay_is_refused(
    tmp_path: Path, fleet: Fleet, server_key: tuple[paramiko.PKey, str], ops: Path
) -> None:
    """Learned at first boot, the next boot of the same overlay shows another key: refused,
    and final (waiting does not change a key)."""
    _, first = host_key(tmp_path, "first_ed25519")
    start_on(fleet, "/vms/os-1.qcow2", first, new=True)
    KnownHosts(fleet).expected(node_of(fleet))  # learned
    start_on(fleet, "/vms/os-1.qcow2", server_key[1])  # the same overlay, another key
    with pytest.raises(HostKeyRefused) as refused:
        KnownHosts(fleet).expected(node_of(fleet))
    assert refused.value.final is True
    assert str(refused.value) == (
        f"{NODE}: its console shows host keys ssh-ed25519 {server_key[1]} but this overlay "
        f"learned ssh-ed25519 {first} at its first boot: refused (a changed host key on the "
        "same overlay)"
    )


def test_the_old_overlay_booted_again_keeps_its_keys(tmp_path: Path, fleet: Fleet) -> None:
    """A rollback boots the old overlay again after the new one printed its keys: the old
    overlay is judged by its own keys, and waits (not final) until it printed them."""
    _, old = host_key(tmp_path, "old_ed25519")
    _, new = host_key(tmp_path, "new_ed25519")
    start_on(fleet, "/vms/os-1.qcow2", old, new=True)
    assert KnownHosts(fleet).expected(node_of(fleet)) == {"ssh-ed25519": old}
    start_on(fleet, "/vms/os-2.qcow2", new, new=True)
    assert KnownHosts(fleet).expected(node_of(fleet)) == {"ssh-ed25519": new}
    KnownHosts(fleet).booting(node_of(fleet), Path("/vms/os-1.qcow2"))  # rolled back
    with pytest.raises(HostKeyRefused) as booting:
        KnownHosts(fleet).expected(node_of(fleet))
    assert booting.value.final is False
    boot(fleet, old)
    assert KnownHosts(fleet).expected(node_of(fleet)) == {"ssh-ed25519": old}


def test_the_running_overlay_is_trusted_while_its_successor_is_made(
    tmp_path: Path, fleet: Fleet
) -> None:
    """A rollout makes the new overlay before it stops the VM: the running VM's pre-stop
    connection still trusts the keys of the overlay it runs on."""
    _, old = host_key(tmp_path, "old_ed25519")
    start_on(fleet, "/vms/os-1.qcow2", old, new=True)
    KnownHosts(fleet).expected(node_of(fleet))
    KnownHosts(fleet).new_overlay(node_of(fleet), Path("/vms/os-2.qcow2"))
    assert KnownHosts(fleet).expected(node_of(fleet)) == {"ssh-ed25519": old}


def test_a_new_overlay_learns_afresh(
    tmp_path: Path,
    fleet: Fleet,
    server: tuple[str, int],
    server_key: tuple[paramiko.PKey, str],
    ops: Path,
) -> None:
    """Keys learned for version 1's overlay; the new overlay's first boot has new keys and the
    connection to the server holding them is accepted."""
    _, old = host_key(tmp_path, "old_ed25519")
    start_on(fleet, "/vms/os-1.qcow2", old, new=True)
    assert KnownHosts(fleet).expected(node_of(fleet)) == {"ssh-ed25519": old}
    start_on(fleet, "/vms/os-2.qcow2", server_key[1], new=True)
    assert hello(fleet, server, ops) == "hello\n"


def test_no_block_on_the_console_yet_refuses(fleet: Fleet) -> None:
    """Before the VM printed its keys the fleet connects to nothing: it says so."""
    node = node_of(fleet)
    KnownHosts(fleet).new_overlay(node, Path("/vms/os-1.qcow2"))
    KnownHosts(fleet).booting(node, Path("/vms/os-1.qcow2"))
    with pytest.raises(HostKeyRefused, match=f"^{NODE}: no SSH host key fingerprints on its"):
        KnownHosts(fleet).expected(node)


def test_appcore_block_is_what_the_fleet_parses(tmp_path: Path) -> None:
    """`appcore hostkeys --console` writes the block; the fleet parses ssh-keygen's fingerprint."""
    root = tmp_path / "root"
    (root / "etc/ssh").mkdir(parents=True)
    (root / "dev").mkdir()
    _, fp = host_key(root / "etc/ssh", "ssh_host_ed25519_key")
    appcore = Path(__file__).resolve().parents[3] / "appcore"
    env = {"PYTHONPATH": str(appcore / "src"), "PATH": "/usr/bin:/bin"}
    argv = [sys.executable, "-m", "appcore", "--root", str(root), "hostkeys"]
    subprocess.run([*argv, "--console", "/dev/ttyS0"], check=True, env=env, capture_output=True)

    text = (root / "dev/ttyS0").read_text()
    assert parse_blocks(text) == [(0, {"ssh-ed25519": fp})]


def test_the_gate_stops_waiting_on_a_changed_key(
    tmp_path: Path,
    fleet: Fleet,
    server: tuple[str, int],
    ops: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rollout gate's probe of a server with another key: not healthy, and final (waiting
    cannot make the key match), naming the learned fingerprint."""
    _, console_fp = host_key(tmp_path, "other_ed25519")
    boot(fleet, console_fp)
    monkeypatch.setattr(health, "ssh_address", lambda fleet, node: server)
    seen = health.probe(fleet, node_of(fleet), ops)
    assert (seen.ok, seen.final) == (False, True)
    assert console_fp in seen.detail


def test_the_gate_waits_while_the_console_has_no_keys_yet(
    fleet: Fleet, server: tuple[str, int], ops: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A VM still booting has printed no keys: not healthy, not final (the gate waits)."""
    KnownHosts(fleet).booting(node_of(fleet), Path("/vms/os-1.qcow2"))
    monkeypatch.setattr(health, "ssh_address", lambda fleet, node: server)
    seen = health.probe(fleet, node_of(fleet), ops)
    assert (seen.ok, seen.final) == (False, False)
    assert "no SSH host key fingerprints on its console yet" in seen.detail


def test_prestop_never_stops_a_node_that_shows_another_key(
    tmp_path: Path, server: tuple[str, int], ops: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rollout's pre-stop step to a server whose key is not the console's: the rollout
    refuses to stop the node (it may not be the node at all)."""
    groups = {"pers-hz": group("HAZELCAST", "persistence", 3, "cluster", "hz-main", ("DATA_MG", 2))}
    hosts = three_simulated_hosts(tmp_path)
    path = write_fleet(tmp_path / "f2", hosts, groups, rollout={"ssh_identity": str(ops)})
    fleet = load_fleet(path)
    _, console_fp = host_key(tmp_path, "other_ed25519")
    boot(fleet, console_fp)
    monkeypatch.setattr(health, "ssh_address", lambda fleet, node: server)
    gate = health.ssh_gate(fleet, 5.0, print)
    assert gate.prestop is not None
    with pytest.raises(FleetError, match=f"^{NODE}: host key .* refused; the node was not stopped"):
        gate.prestop(node_of(fleet))


def test_a_galera_member_with_another_key_gives_no_position_and_says_why(
    tmp_path: Path,
    fleet: Fleet,
    server: tuple[str, int],
    ops: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Formation and recovery ask each member its position over SSH: a member showing another
    key gives none, and the wait names the refusal (not just "no answer")."""
    _, console_fp = host_key(tmp_path, "other_ed25519")
    boot(fleet, console_fp)
    monkeypatch.setattr(galera_ssh, "ssh_address", lambda fleet, node: server)
    member = galera_ssh.SshMember(fleet, node_of(fleet), ops)
    assert member.report() is None
    said = capsys.readouterr().out
    assert f"does not match {console_fp} learned from its console" in said
