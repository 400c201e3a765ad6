"""The remote layer cache: built layers shared between build hosts through the image store.

cache/layers/<key>/<sha256>.qcow2   the layer's image (an overlay, or a sealed image)
cache/layers/<key>/record.json      {"record": {...}, "signature": "<ssh-keygen -Y sign>"}

The record names the layer (key, name, sha256 and size of its image, the parent's key and the
sha256 of the exact parent bytes it was built on) and carries what the local cache keeps
beside the image (inputs, facts, and a sealed layer's manifest). Record and signature are one
object, so a reader never pairs one host's record with another's signature.

Two hosts that build one key at once: images are named by their sha256, so neither overwrites
the other's bytes; the record is written only if none is there, and a pusher reads it back to
learn whose layer won. A host whose layer lost pushes none of the children it built on it: a
child overlay is only valid on the parent bytes it was built on, which the store does not have.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagefactory.store import layout
from imagefactory.store.backend import ObjectMissing, StoreBackend, StoreError
from imagefactory.store.download_pipe import pipe_to_file
from imagefactory.store.signing import SignatureError, sign_bytes, verify_bytes
from imagefactory.store.transfer_meter import Progress

PREFIX = "cache/layers/"
PROBES = "cache/probes/"  # write probes: outside PREFIX, so no reader ever looks at one
RECORD = "record.json"
RECORD_SCHEMA = 1
_KEY_LEN = 64


def record_key(key: str) -> str:
    return f"{PREFIX}{key}/{RECORD}"


def blob_key(key: str, sha256: str) -> str:
    return f"{PREFIX}{key}/{sha256}.qcow2"


def canonical(record: dict[str, Any]) -> bytes:
    """The signed bytes of a record: one spelling, whatever wrote it."""
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


class UntrustedLayer(StoreError):
    """A remote layer whose record or bytes fail verification: never used."""


@dataclass(frozen=True)
class RemoteLayer:
    """A verified record of a layer in the store."""

    key: str
    name: str
    image: str  # file name in the local cache entry (layer.qcow2 or image.qcow2)
    sha256: str
    size: int
    parent: str | None
    parent_sha256: str | None
    inputs: dict[str, Any]
    facts: dict[str, Any]
    manifest: dict[str, Any] | None
    signer: str


def listing(backend: StoreBackend) -> frozenset[str]:
    """Keys that have a record in the store, from one listing."""
    keys = set()
    for name in backend.list_keys(PREFIX):
        parts = name[len(PREFIX) :].split("/")
        if len(parts) == 2 and parts[1] == RECORD and len(parts[0]) == _KEY_LEN:
            keys.add(parts[0])
    return frozenset(keys)


def read_record(backend: StoreBackend, key: str, allowed_signers: Path) -> RemoteLayer | None:
    """The verified record of `key`, None if there is none; UntrustedLayer if it fails."""
    what = f"remote layer {key[:12]}"
    try:
        raw = backend.get_bytes(record_key(key))
    except ObjectMissing:
        return None
    try:
        wrapper = json.loads(raw)
        record, signature = wrapper["record"], wrapper["signature"]
        if not isinstance(record, dict) or not isinstance(signature, str):
            raise TypeError("record or signature of the wrong type")
    except (ValueError, KeyError, TypeError) as exc:
        raise UntrustedLayer(f"{what}: record is not readable ({exc})") from None
    try:
        signer = verify_bytes(canonical(record), signature.encode(), allowed_signers, what)
    except SignatureError as exc:
        raise UntrustedLayer(str(exc)) from None
    try:
        layer = RemoteLayer(
            key=str(record["key"]),
            name=str(record["name"]),
            image=str(record["image"]),
            sha256=str(record["sha256"]),
            size=int(record["size"]),
            parent=record["parent"],
            parent_sha256=record["parent_sha256"],
            inputs=dict(record["inputs"]),
            facts=dict(record["facts"]),
            manifest=record.get("manifest"),
            signer=signer,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UntrustedLayer(f"{what}: signed, but the record lacks {exc}") from None
    if layer.key != key or "/" in layer.image or len(layer.sha256) != _KEY_LEN:
        raise UntrustedLayer(f"{what}: signed, but the record describes another layer")
    return layer


def fetch_image(
    backend: StoreBackend, layer: RemoteLayer, dest: Path, show_progress: bool = True
) -> None:
    """Download the layer's image to `dest`, checking size and sha256 (UntrustedLayer if they
    differ from the signed record; `dest` is then removed). No fsync: unlike a template on a
    hypervisor, a cached layer is hashed against its record before a build uses it, so one
    torn by a crash is caught and fetched again."""
    digest = hashlib.sha256()
    bar = Progress(f"fetch {layer.name}", layer.size, enabled=show_progress)
    try:
        with dest.open("wb") as out:
            chunks = backend.iter_from(blob_key(layer.key, layer.sha256), 0)
            done = pipe_to_file(chunks, out, digest, bar, layer.size, early_writeback=False)
    except ObjectMissing:
        dest.unlink(missing_ok=True)
        raise UntrustedLayer(f"remote layer {layer.key[:12]}: its image is missing") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    if done != layer.size or digest.hexdigest() != layer.sha256:
        dest.unlink(missing_ok=True)
        raise UntrustedLayer(
            f"remote layer {layer.name} {layer.key[:12]}: its image has {done} bytes, sha256 "
            f"{digest.hexdigest()}; the signed record says {layer.size} bytes, {layer.sha256}"
        )


@dataclass(frozen=True)
class PushResult:
    key: str
    won: bool  # the store's record is ours (pushed now, or the same bytes were there)
    uploaded: int
    store_sha256: str  # the sha256 of the layer the store keeps for this key


def push_problem(backend: StoreBackend, signing_key: Path, allowed_signers: Path) -> str | None:
    """Why this host cannot push layers (None: it can), found before the first byte is sent:
    the signing key signs, readers (this host included) trust that signature, and the store
    accepts writes and deletes here."""
    probe = b"imagefactory layer cache push probe"
    try:
        signature = sign_bytes(probe, signing_key)
        verify_bytes(probe, signature, allowed_signers, "a probe signed with store.signing_key")
    except SignatureError as exc:
        return str(exc)
    name = f"{PROBES}{uuid.uuid4().hex}"
    try:
        backend.put_bytes(name, b"")
        backend.delete(name)
    except StoreError as exc:
        return f"the store refuses this host's writes under {PREFIX} ({exc})"
    return None


def push(
    backend: StoreBackend,
    record: dict[str, Any],
    image: Path,
    signing_key: Path,
    allowed_signers: Path,
) -> PushResult:
    """Upload one layer unless the store has it; the first complete record wins."""
    key, sha = str(record["key"]), str(record["sha256"])
    existing = _existing(backend, key, allowed_signers)
    if existing is not None:
        return PushResult(key, existing == sha, 0, existing)
    uploaded = 0
    blob = blob_key(key, sha)
    if backend.size(blob) != image.stat().st_size:
        receipt = backend.upload_file(blob, image, None)
        if receipt.sha256 != sha:
            backend.delete(blob)
            raise StoreError(
                f"layer {key[:12]}: {image} changed while it was pushed (sha256 "
                f"{receipt.sha256}, its record says {sha}); not pushed"
            )
        uploaded = image.stat().st_size
    record = {**record, "schema": RECORD_SCHEMA, "pushed_by": layout.actor()}
    signature = sign_bytes(canonical(record), signing_key).decode()
    data = json.dumps({"record": record, "signature": signature}, indent=1).encode()
    if backend.put_new(record_key(key), data):  # of two pushers, exactly one creates it
        return PushResult(key, True, uploaded, sha)
    final = _existing(backend, key, allowed_signers)
    return PushResult(key, final == sha, uploaded, final or "")


def _existing(backend: StoreBackend, key: str, allowed_signers: Path) -> str | None:
    """sha256 of the layer the store keeps for `key`; None if none. A record nobody can trust
    (changed, or signed by a key not in allowed_signers), or whose image is gone, is removed:
    a push replaces it."""
    try:
        layer = read_record(backend, key, allowed_signers)
    except UntrustedLayer:
        backend.delete(record_key(key))
        return None
    if layer is not None and backend.size(blob_key(key, layer.sha256)) != layer.size:
        backend.delete(record_key(key))
        return None
    return layer.sha256 if layer is not None else None


def unreferenced(backend: StoreBackend, keep: Iterable[str]) -> list[str]:
    """Layer keys in the store that no kept image names (for prune)."""
    wanted = set(keep)
    return sorted(k for k in layer_dirs(backend) if k not in wanted)


def orphans(backend: StoreBackend, keys: Iterable[str]) -> list[str]:
    """Objects under the layer directories `keys` that no reader would use: an image that no
    record names (a push interrupted before its record, or a lost race), and a record whose
    image is gone (it would fail every fetch and block every push of its key)."""
    found: list[str] = []
    for key in sorted(set(keys)):
        names = backend.list_keys(f"{PREFIX}{key}/")
        named = None
        if record_key(key) in names:
            try:
                record = json.loads(backend.get_bytes(record_key(key)))["record"]
                named = blob_key(key, str(record["sha256"]))
            except (ObjectMissing, ValueError, KeyError, TypeError):
                named = None  # unreadable: readers refuse it, a push replaces it
            if named is not None and named not in names:
                found.append(record_key(key))
        found += [n for n in names if n not in (record_key(key), named)]
    return found


def layer_dirs(backend: StoreBackend) -> set[str]:
    """Every key that has a directory under PREFIX, with or without a record."""
    return {
        name[len(PREFIX) :].split("/")[0]
        for name in backend.list_keys(PREFIX)
        if len(name[len(PREFIX) :].split("/")) == 2
    }


def delete_layer(backend: StoreBackend, key: str) -> None:
    """Record first: a half-deleted layer is already unusable."""
    backend.delete(record_key(key))
    for name in backend.list_keys(f"{PREFIX}{key}/"):
        backend.delete(name)
