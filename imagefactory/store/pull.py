"""Pull a template onto a hypervisor: signatures first, resumable download, atomic install.

Installed templates are never overwritten (VMs may use them as backing files): each
version gets its own read-only file `<image_dir>/<family>-<version>.qcow2`. The highest
channel pointer sequence pulled per family/channel is kept in `<image_dir>/<SEEN_FILE>`, so a
replayed older (validly signed) pointer is refused.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagefactory.store import layout
from imagefactory.store.backend import ObjectMissing, StoreBackend, StoreError
from imagefactory.store.channels import ChannelPointer, read_signed_channel
from imagefactory.store.download_pipe import pipe_to_file
from imagefactory.store.transfer_meter import Progress
from imagefactory.store.trust import fetch_verified_manifest
from imagefactory.util.fsutil import write_atomic

SEEN_FILE = ".imagefactory-channels.json"

_HASH_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class PullResult:
    family: str
    version: str
    path: Path
    bytes_downloaded: int
    resumed_from: int
    already_installed: bool
    signer: str
    channel_sequence: int | None = None  # of the pointer used, when pulled by channel


def resolve_version(
    backend: StoreBackend,
    family: str,
    channel: str | None,
    version: str | None,
    allowed_signers: Path,
) -> tuple[str, ChannelPointer | None]:
    """An explicit version, else the target of the channel's verified pointer, else the
    newest visible image."""
    layout.check_name("family", family)
    if version:
        return layout.check_version(version), None
    if channel:
        pointer = read_signed_channel(
            backend, family, layout.check_name("channel", channel), allowed_signers
        )
        if pointer is None:
            raise StoreError(
                f"{backend.describe()}: {family} has no channel {channel!r} "
                "(hint: invoke images; invoke promote)"
            )
        return pointer.version, pointer
    records = layout.visible_images(backend, family)
    if not records:
        raise StoreError(f"{backend.describe()}: no published images of {family}")
    return records[-1].version, None


def _seen_key(pointer: ChannelPointer) -> str:
    return f"{pointer.family}/{pointer.channel}"


def _read_seen(image_dir: Path) -> dict[str, Any]:
    path = image_dir / SEEN_FILE
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        doc = None
    if not isinstance(doc, dict):
        raise StoreError(
            f"{path} is not a JSON object (hint: remove it to forget the channel sequences "
            "this host has seen)"
        )
    return doc


def check_not_rolled_back(image_dir: Path, pointer: ChannelPointer) -> None:
    """Refuse a pointer older than one this host already pulled (a replayed old pointer)."""
    entry = _read_seen(image_dir).get(_seen_key(pointer))
    if not isinstance(entry, dict):
        return
    seen = entry.get("sequence")
    if isinstance(seen, int) and pointer.sequence < seen:
        raise StoreError(
            f"{pointer.family} channel {pointer.channel!r}: the store's pointer (sequence "
            f"{pointer.sequence}, {pointer.version}) is older than the one this host already "
            f"pulled (sequence {seen}, {entry.get('version')}); refusing a rollback (hint: to "
            "go back on purpose, promote that version again, or pull --version)"
        )


def record_seen(image_dir: Path, pointer: ChannelPointer) -> None:
    """Remember the pointer's sequence if it is the highest seen for its channel."""
    with (image_dir / f"{SEEN_FILE}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent pulls: read-modify-write one at a time
        seen = _read_seen(image_dir)
        entry = seen.get(_seen_key(pointer))
        old = entry.get("sequence") if isinstance(entry, dict) else None
        if isinstance(old, int) and old >= pointer.sequence:
            return
        seen[_seen_key(pointer)] = {
            "sequence": pointer.sequence,
            "version": pointer.version,
            "signer": pointer.signer,
            "pulled": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_atomic(image_dir / SEEN_FILE, json.dumps(seen, indent=2, sort_keys=True) + "\n")


def _hash_existing(path: Path, digest: Any) -> int:
    done = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
            done += len(chunk)
    return done


def pull_image(
    backend: StoreBackend,
    family: str,
    image_dir: Path,
    allowed_signers: Path,
    *,
    channel: str | None = None,
    version: str | None = None,
    show_progress: bool = True,
) -> PullResult:
    """Download, verify and install one template; a failed check installs nothing."""
    version, pointer = resolve_version(backend, family, channel, version, allowed_signers)
    if pointer is not None:
        check_not_rolled_back(image_dir, pointer)
    doc, raw_manifest, signer = fetch_verified_manifest(backend, family, version, allowed_signers)
    manifest_sha = hashlib.sha256(raw_manifest).hexdigest()
    if pointer is not None and manifest_sha != pointer.manifest_sha256:
        raise StoreError(
            f"{family} channel {pointer.channel!r}: the pointer was signed for a manifest.json "
            f"with sha256 {pointer.manifest_sha256}, but {version}'s manifest.json has "
            f"{manifest_sha}; refusing it (the manifest was replaced after promotion; if that "
            "was intended, promote the version again)"
        )
    seq = pointer.sequence if pointer is not None else None
    size, sha = int(doc["image"]["size"]), str(doc["image"]["sha256"]).lower()
    name = layout.blob_name(family, version)
    final = image_dir / name
    sidecar = image_dir / f"{family}-{version}.manifest.json"
    image_dir.mkdir(parents=True, exist_ok=True)
    if final.exists():
        if _installed_matches(final, sidecar, sha):
            write_atomic(sidecar, raw_manifest, mode=0o444)
            if pointer is not None:
                record_seen(image_dir, pointer)
            return PullResult(family, version, final, 0, 0, True, signer, seq)
        raise StoreError(
            f"{final} exists but is not this image; refusing to overwrite a "
            "template that VMs may be backed by"
        )

    part = image_dir / f".{name}.part"
    digest = hashlib.sha256()
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    if have:
        have = _hash_existing(part, digest)
    bar = Progress(f"pull {family}", size, enabled=show_progress)
    bar.start_at(have)
    got = 0
    try:
        with part.open("ab") as out:
            if have < size:
                chunks = backend.iter_from(layout.blob_key(family, version), have)
                got = pipe_to_file(chunks, out, digest, bar, size - have)
            out.flush()
            os.fsync(out.fileno())
    except ObjectMissing:
        part.unlink(missing_ok=True)
        raise StoreError(f"{backend.describe()}: blob of {family} {version} is missing") from None
    finally:
        bar.close()
    total = have + got
    if total != size or digest.hexdigest() != sha:
        part.unlink()  # whichever copy is at fault, the next pull starts from byte 0
        found = f"{total} bytes" if total != size else f"sha256 {digest.hexdigest()}"
        if total == size and have:
            raise StoreError(
                f"{family} {version}: downloaded blob has {found}, manifest says sha256 {sha}; "
                f"the first {have} bytes were resumed from {part} (left by an earlier pull), "
                "which may be what is damaged rather than the store copy; it was removed: a "
                "re-run downloads the image from the start (if that fails too, the store's "
                "copy is at fault); nothing installed"
            )
        raise StoreError(
            f"{family} {version}: downloaded blob has {found}, manifest says "
            f"{size} bytes sha256 {sha}; the store copy is corrupt, nothing "
            "installed"
        )
    os.chmod(part, 0o444)
    try:
        os.link(part, final)  # unlike rename, link never replaces an existing file
    except FileExistsError:
        part.unlink()
        raise StoreError(f"{final} appeared while pulling; not overwritten") from None
    part.unlink()
    write_atomic(sidecar, raw_manifest, mode=0o444)
    if pointer is not None:
        record_seen(image_dir, pointer)
    _fsync_dir(image_dir)
    return PullResult(family, version, final, got, have, False, signer, seq)


def _installed_matches(final: Path, sidecar: Path, sha: str) -> bool:
    """An installed template is this image: by its manifest beside it, else by hashing it."""
    try:
        if json.loads(sidecar.read_bytes())["image"]["sha256"] == sha:
            return True
    except (OSError, ValueError, KeyError, TypeError):
        pass  # e.g. killed between installing the image and writing its manifest
    digest = hashlib.sha256()
    _hash_existing(final, digest)
    return digest.hexdigest() == sha


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
