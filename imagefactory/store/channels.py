"""Channels: small signed pointer objects with history.

A pointer names family, channel, version, the sha256 of that version's manifest.json, a
sequence that only grows, when and by whom it was promoted. It is signed like a manifest
(`ssh-keygen -Y sign -n imagefactory`, `<channel>.json.sig` beside it), so a writer of the
bucket cannot point a channel at another (older, validly signed) version.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagefactory.store import layout
from imagefactory.store.backend import ObjectMissing, StoreBackend, StoreError
from imagefactory.store.revocation import read_revocation, refuse_revoked
from imagefactory.store.signing import SignatureError, SignatureMismatch, sign_bytes, verify_bytes
from imagefactory.store.trust import trusted_manifest

HISTORY_LIMIT = 100  # entries kept inside a pointer; older moves are dropped
POINTER_SCHEMA = 2  # schema 1 pointers (before signing) have no signature and are refused
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_MAX_SEQUENCE = 2**53  # stays exact as a JSON number everywhere
_RACE_PAUSE = 0.2  # seconds: a promote writes the signature, then the pointer


def read_channel(backend: StoreBackend, family: str, channel: str) -> dict[str, Any] | None:
    """The channel pointer document, UNVERIFIED, or None if the channel was never set.

    For history, prune and display only; whatever installs an image must use
    read_signed_channel.
    """
    try:
        doc = json.loads(backend.get_bytes(layout.channel_key(family, channel)))
    except ObjectMissing:
        return None
    except ValueError:
        raise StoreError(
            f"{backend.describe()}: {layout.channel_key(family, channel)} is not valid JSON"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("version"), str):
        raise StoreError(
            f"{backend.describe()}: {layout.channel_key(family, channel)} has no version"
        )
    return doc


@dataclass(frozen=True)
class ChannelPointer:
    """A channel pointer whose signature verified and which names its own family and channel."""

    family: str
    channel: str
    version: str
    manifest_sha256: str
    sequence: int
    promoted: str
    by: str
    signer: str


def _sequence(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 < value < _MAX_SEQUENCE
    return value if ok else None


def read_signed_channel(
    backend: StoreBackend, family: str, channel: str, allowed_signers: Path
) -> ChannelPointer | None:
    """The verified pointer, or None if the channel was never set.

    Raises SignatureError (unsigned, unknown signer, tampered) or StoreError (signed, but
    for another family or channel, or malformed) rather than return a pointer it cannot trust.
    """
    what = f"{family} channel {channel!r} pointer"
    for attempt in (1, 2):
        try:
            data = backend.get_bytes(layout.channel_key(family, channel))
        except ObjectMissing:
            return None
        try:
            sig = backend.get_bytes(layout.channel_signature_key(family, channel))
        except ObjectMissing:
            raise SignatureError(
                f"{what}: not signed ({layout.channel_signature_key(family, channel)} is "
                "missing); refusing it (hint: promote the version again with a signing key)"
            ) from None
        try:
            signer = verify_bytes(data, sig, allowed_signers, what)
            break
        except SignatureMismatch as exc:
            if attempt == 2:
                raise SignatureMismatch(
                    f"{exc}; refusing it (hint: if a promote was interrupted, run it again)"
                ) from None
            time.sleep(_RACE_PAUSE)  # read between a promote's two writes: read both again
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise StoreError(f"{what}: signed, but not a JSON object; refusing it")
    if doc.get("family") != family or doc.get("channel") != channel:
        raise StoreError(
            f"{what}: signed, but for family {doc.get('family')!r} channel "
            f"{doc.get('channel')!r} (copied from elsewhere?); refusing it"
        )
    version, sha = doc.get("version"), doc.get("manifest_sha256")
    sequence = _sequence(doc.get("sequence"))
    if (
        not isinstance(version, str)
        or not layout.VERSION_RE.match(version)
        or not isinstance(sha, str)
        or not _SHA256_RE.match(sha)
        or sequence is None
    ):
        raise StoreError(
            f"{what}: signed, but lacks a valid version, manifest_sha256 or sequence "
            f"(schema {doc.get('schema')!r}); refusing it"
        )
    return ChannelPointer(
        family,
        channel,
        version,
        sha,
        sequence,
        str(doc.get("promoted", "")),
        str(doc.get("by", "")),
        signer,
    )


def _previous(backend: StoreBackend, family: str, channel: str) -> dict[str, Any]:
    """The current pointer for history and sequence, {} if absent or unreadable (a broken
    pointer must not stop the promote that repairs it)."""
    try:
        return read_channel(backend, family, channel) or {}
    except StoreError:
        return {}


def promote(
    backend: StoreBackend,
    family: str,
    version: str,
    channel: str,
    signing_key: Path,
    *,
    allowed_signers: Path,
) -> dict[str, Any]:
    """Point `channel` of `family` at a published version whose manifest signature checks
    out against `allowed_signers`, with a newly signed pointer (never vouch for a manifest
    that was changed after it was signed), and never at a revoked version.

    The previous target goes to history when the version changes. Promoting the current
    target again re-signs it with a higher sequence (that is how an unsigned or damaged
    pointer is repaired).
    """
    layout.check_name("family", family)
    layout.check_name("channel", channel)
    layout.check_version(version)
    if layout.load_visible(backend, family, version) is None:
        raise StoreError(
            f"{backend.describe()}: {family} {version} is not a complete "
            "published image; cannot promote it"
        )
    record = read_revocation(backend, family, version, allowed_signers)
    refuse_revoked(record, f"promoting it to {channel} (hint: promote another version)")
    _, data = trusted_manifest(backend, family, version, allowed_signers, "promoting")
    return write_pointer(
        backend, family, version, channel, signing_key, hashlib.sha256(data).hexdigest()
    )


def write_pointer(
    backend: StoreBackend,
    family: str,
    version: str,
    channel: str,
    signing_key: Path,
    manifest_sha256: str,
) -> dict[str, Any]:
    """Sign and write the pointer of `channel` to `version`, whose manifest.json has
    `manifest_sha256` (checked by the caller: promote verified it, publish just wrote it)."""
    old = _previous(backend, family, channel)
    history = [h for h in old.get("history") or [] if isinstance(h, dict)]
    if old.get("version") not in (None, version):
        keep = ("version", "promoted", "by", "sequence")
        history.insert(0, {k: old[k] for k in keep if k in old})
    # Grows with every promote, and starts from the clock (ms), so it keeps growing even if
    # a pointer is deleted and created again.
    sequence = max((_sequence(old.get("sequence")) or 0) + 1, time.time_ns() // 1_000_000)
    doc = {
        "schema": POINTER_SCHEMA,
        "family": family,
        "channel": channel,
        "version": version,
        "manifest_sha256": manifest_sha256,
        "sequence": sequence,
        "promoted": datetime.now(UTC).isoformat(timespec="seconds"),
        "by": layout.actor(),
        "history": history[:HISTORY_LIMIT],
    }
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    signature = sign_bytes(data, signing_key)  # fails before anything is written
    backend.put_bytes(layout.channel_signature_key(family, channel), signature)
    backend.put_bytes(layout.channel_key(family, channel), data)
    return doc


def all_channels(backend: StoreBackend) -> dict[tuple[str, str], str]:
    """(family, version) -> comma-separated channel names pointing at it (UNVERIFIED: used to
    keep pinned versions from being pruned, where trusting a forged pointer only keeps more;
    an unreadable pointer is an error, as it might pin anything)."""
    out: dict[tuple[str, str], list[str]] = {}
    for family, channel in _channel_names(backend, None):
        doc = read_channel(backend, family, channel)
        if doc is not None:
            out.setdefault((family, str(doc["version"])), []).append(channel)
    return {k: ",".join(sorted(v)) for k, v in out.items()}


def channels_at(backend: StoreBackend, family: str, version: str) -> list[str]:
    """The channels of `family` whose pointer (UNVERIFIED: for a warning) names `version`; an
    unreadable pointer is listed too, marked, as it might."""
    out = []
    for _, channel in _channel_names(backend, family):
        try:
            doc = read_channel(backend, family, channel)
        except StoreError:
            out.append(f"{channel} (unreadable pointer)")
            continue
        if doc is not None and doc["version"] == version:
            out.append(channel)
    return sorted(out)


def _channel_names(backend: StoreBackend, family: str | None) -> list[tuple[str, str]]:
    names = []
    for key in backend.list_keys(f"channels/{family}/" if family else "channels/"):
        parts = key.split("/")
        if len(parts) == 3 and parts[2].endswith(".json"):  # not the .json.sig beside it
            names.append((parts[1], parts[2][: -len(".json")]))
    return names


@dataclass(frozen=True)
class ChannelStatus:
    """What `invoke images` says about one pointer; problem is "" only if it can be trusted."""

    family: str
    channel: str
    version: str  # the version the pointer names ("" if unreadable)
    problem: str
    signer: str = ""
    sequence: int | None = None


def channel_statuses(
    backend: StoreBackend,
    records: list[layout.ImageRecord],
    allowed_signers: Path | None,
    family: str | None = None,
    bad_manifests: dict[tuple[str, str], str] | None = None,
) -> list[ChannelStatus]:
    """Check every pointer as pull would: signature, family/channel, manifest sha256, and
    (from `bad_manifests`) the target manifest's own signature."""
    visible = {(r.family, r.version): r for r in records}
    out = []
    for fam, chan in _channel_names(backend, family):
        try:
            claimed = str((read_channel(backend, fam, chan) or {}).get("version", ""))
        except StoreError:
            claimed = ""
        if allowed_signers is None:
            out.append(ChannelStatus(fam, chan, claimed, "signature not checked"))
            continue
        try:
            ptr = read_signed_channel(backend, fam, chan, allowed_signers)
        except (SignatureError, StoreError) as exc:
            out.append(ChannelStatus(fam, chan, claimed, str(exc)))
            continue
        if ptr is None:
            continue  # deleted meanwhile
        record = visible.get((fam, ptr.version))
        problem = ""
        if record is None:
            problem = f"points at {ptr.version}, which is not a complete published image"
        elif record.manifest_sha256 != ptr.manifest_sha256:
            problem = (
                f"signed for a manifest.json with sha256 {ptr.manifest_sha256[:12]}..., "
                f"but {ptr.version}'s has {record.manifest_sha256[:12]}..."
            )
        elif (why := (bad_manifests or {}).get((fam, ptr.version))) is not None:
            problem = f"points at {ptr.version}: {why}"
        out.append(ChannelStatus(fam, chan, ptr.version, problem, ptr.signer, ptr.sequence))
    return out
