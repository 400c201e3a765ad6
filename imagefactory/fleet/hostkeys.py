"""Known host keys: every SSH connection of the fleet checks the VM's host key against the
fingerprints App-Core printed on the VM's serial console (docs/fleet.md "Security").

The console is a channel only the hypervisor sees: libvirt writes serial port 0 to the node's
console log (domain.py, `<log file=... append='on'/>`). App-Core prints a block at every boot
(`appcore hostkeys`); the first block of an overlay is learned and kept in
`<rollout state dir>/hostkeys/<host>.json`, per overlay. Before the fleet starts a VM it
records how long the console log was then (`start`), so each boot is judged by what it printed
itself: a new overlay learns from its first boot, an overlay booted again (a restart, a
rollback) must show the keys it learned. A block that differs, or a server key that matches no
learned fingerprint, is refused with a message naming the node and both fingerprints.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paramiko

from imagefactory.fleet import hypervisor as hvm
from imagefactory.fleet.hypervisor import Connections, FleetError, is_local
from imagefactory.fleet.model import Fleet
from imagefactory.fleet.nodes import Node
from imagefactory.fleet.storage import layout_for, pool_name
from imagefactory.guest.ssh import open_ssh
from imagefactory.util.fsutil import write_json_atomic

_LOCK = threading.Lock()  # one state file per host, shared by the rollout's lanes
BEGIN = "-----BEGIN SSH HOST KEY FINGERPRINTS-----"  # as appcore/hostkeys.py prints them
END = "-----END SSH HOST KEY FINGERPRINTS-----"
Block = tuple[int, dict[str, str]]  # (offset where the block starts, key type -> fingerprint)


class HostKeyRefused(paramiko.SSHException):
    """The server's key is not the one the node's console showed: the connection is refused
    (an SSHException, so every caller's "no SSH" handling reports it). `final`: a key that
    differs from the learned one, which waiting cannot change (no block yet can)."""

    def __init__(self, message: str, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint: unpadded base64 of the SHA-256 of the key blob."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def parse_blocks(text: str) -> list[Block]:
    """Every complete fingerprint block in a console log, oldest first. Console lines end in
    \\r\\n and may be interleaved with kernel messages: only `TYPE SHA256:...` lines count."""
    blocks: list[Block] = []
    start = text.find(BEGIN)
    while start >= 0:
        end = text.find(END, start)
        if end < 0:
            break  # the VM is printing it right now
        keys = {}
        for line in text[start + len(BEGIN) : end].splitlines():
            words = line.strip().split()
            if len(words) == 2 and words[1].startswith("SHA256:"):
                keys[words[0]] = words[1]
        if keys:
            blocks.append((start, keys))
        start = text.find(BEGIN, end)
    return blocks


def console_bytes(fleet: Fleet, node: Node) -> bytes:
    """The node's console log as libvirt wrote it: a file on a local hypervisor, a volume of
    the fleet's pool on a remote one (read over the libvirt connection)."""
    hv = fleet.hypervisors[node.host]
    path = layout_for(hv).console_log(node.name)
    if is_local(hv.uri):
        return path.read_bytes() if path.exists() else b""
    conns = Connections()
    try:
        conn = conns.get(hv)
        pool = conn.storagePoolLookupByName(pool_name(hv.storage_dir))
        pool.refresh(0)
        vol = pool.storageVolLookupByName(path.name)
        stream = conn.newStream(0)
        vol.download(stream, 0, 0, 0)
        chunks = []
        while chunk := stream.recv(1024 * 1024):
            chunks.append(chunk)
        stream.finish()
        return b"".join(chunks)
    except Exception as exc:  # libvirtError and friends: the check fails closed
        raise HostKeyRefused(f"{node.name}: cannot read its console log {path}: {exc}") from exc
    finally:
        conns.close()


class KnownHosts:
    """node -> {overlay, console_from, keys, learned}, one JSON file per hypervisor."""

    def __init__(self, fleet: Fleet) -> None:
        base = fleet.rollout.state_dir or fleet.path.parent / "rollout"
        self.dir = base / "hostkeys"
        self.fleet = fleet

    def _path(self, host: str) -> Path:
        return self.dir / f"{host}.json"

    def load(self, host: str) -> dict[str, dict[str, Any]]:
        path = self._path(host)
        if not path.exists():
            return {}
        try:
            return {str(k): dict(v) for k, v in json.loads(path.read_text())["nodes"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise FleetError(f"{path}: unreadable known host keys ({exc})") from None

    def _save(self, node: Node, entry: dict[str, Any] | None) -> None:
        nodes = self.load(node.host)
        if entry is None:
            nodes.pop(node.name, None)
        else:
            nodes[node.name] = entry
        write_json_atomic(self._path(node.host), {"fleet": self.fleet.name, "nodes": nodes})

    def new_overlay(self, node: Node, overlay: Path) -> None:
        """`overlay` was just made and has never booted: keys learned for that path (an
        earlier overlay of the same name) are void; its first boot will teach new ones."""
        with _LOCK:
            entry = self.load(node.host).get(node.name) or {}
            known = {k: v for k, v in dict(entry.get("known") or {}).items() if k != str(overlay)}
            self._save(node, {**entry, "known": known})

    def booting(self, node: Node, overlay: Path) -> None:
        """The node is about to boot from `overlay`: only what its console prints from now
        on counts for this boot (the block of a previous boot, perhaps of another overlay,
        does not)."""
        size = len(console_bytes(self.fleet, node))
        with _LOCK:
            entry = self.load(node.host).get(node.name) or {}
            self._save(node, {**entry, "overlay": str(overlay), "boot_from": size})

    def forget(self, node: Node) -> None:
        with _LOCK:
            self._save(node, None)

    def expected(self, node: Node) -> dict[str, str]:
        """The fingerprints the node must show on this boot (learned now if this is its
        overlay's first boot); HostKeyRefused if it printed none since it started (not final:
        it is booting) or printed other keys than its overlay's (final)."""
        entry = self.load(node.host).get(node.name)
        since = int(entry.get("boot_from", 0)) if entry else 0
        log = layout_for(self.fleet.hypervisors[node.host]).console_log(node.name)
        text = console_bytes(self.fleet, node)[since:].decode("utf-8", "replace")
        blocks = parse_blocks(text)
        if not blocks:
            raise HostKeyRefused(
                f"{node.name}: no SSH host key fingerprints on its console yet ({log}, from "
                f"byte {since}): not connecting to an unknown host"
            )
        latest = blocks[-1][1]
        if entry is None or "overlay" not in entry:
            return latest  # a VM from before known host keys: its latest block
        overlay = str(entry["overlay"])
        known = dict(entry.get("known") or {})
        learned = dict(known.get(overlay, {}).get("keys") or {})
        if not learned:
            learned = blocks[0][1]  # this overlay's first boot
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            with _LOCK:
                fresh = self.load(node.host).get(node.name) or entry
                have = dict(fresh.get("known") or {})
                have[overlay] = {"keys": learned, "learned": stamp}
                self._save(node, {**fresh, "known": have})
        if latest != learned:
            raise HostKeyRefused(
                f"{node.name}: its console shows host keys {_fmt(latest)} but this overlay "
                f"learned {_fmt(learned)} at its first boot: refused (a changed host key on "
                "the same overlay)",
                final=True,
            )
        return learned


def start(fleet: Fleet, node: Node, dom: Any) -> None:
    """Start the node's domain, its boot marked first for the host-key check."""
    KnownHosts(fleet).booting(node, os_overlay(dom))
    hvm.start(fleet.hypervisors[node.host], dom)


def os_overlay(dom: Any) -> Path:
    """The OS disk (vda) the domain boots from, as defined (domain.py writes it)."""
    root = ET.fromstring(dom.XMLDesc(0))
    for disk in root.iter("disk"):
        target, source = disk.find("target"), disk.find("source")
        if target is not None and target.get("dev") == "vda" and source is not None:
            return Path(source.get("file") or "")
    raise FleetError(f"domain {dom.name()}: no OS disk (vda) in its definition")


def _fmt(keys: dict[str, str]) -> str:
    return ", ".join(f"{t} {fp}" for t, fp in sorted(keys.items()))


class LearnedKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Accept the server's key only if its SHA256 fingerprint is the one learned for its type."""

    def __init__(self, node: str, learned: dict[str, str]) -> None:
        self.node = node
        self.learned = learned

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: Any) -> None:
        offered, kind = fingerprint(key), key.get_name()
        if self.learned.get(kind) != offered:
            raise HostKeyRefused(
                f"{self.node}: host key {kind} {offered} offered at {hostname} does not match "
                f"{self.learned.get(kind) or 'no ' + kind + ' key'} learned from its console "
                f"({_fmt(self.learned)}): refused",
                final=True,
            )


def connect(
    fleet: Fleet, node: Node, address: tuple[str, int], user: str, key: Path, timeout: float
) -> paramiko.SSHClient:
    """open_ssh to a fleet node, trusting only the host keys its console showed."""
    policy = LearnedKeyPolicy(node.name, KnownHosts(fleet).expected(node))
    return open_ssh(address, user, key, timeout, policy=policy)
