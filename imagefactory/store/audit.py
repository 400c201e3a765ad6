"""`invoke store.verify`: is everything the store keeps what its signatures say?

For every version: the manifest's signature (against allowed_signers) and that it names its
own family and version; the blob (size, then the server's CRC32 against the one recorded in
the signed manifest, or every byte re-hashed); SHA256SUMS and each report it lists. For
every channel: the pointer's signature and that its target is trusted. Versions without a
manifest are invisible leftovers of killed publishes: listed, not counted as damage (prune
removes them). The repair for each kind of damage is in docs/store.md ("Repair").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imagefactory.store import layout
from imagefactory.store.backend import ObjectMissing, StoreBackend, StoreError
from imagefactory.store.blob_check import BlobFacts, check_blob
from imagefactory.store.channels import ChannelStatus, channel_statuses
from imagefactory.store.signing import SignatureError
from imagefactory.store.trust import fetch_verified_manifest


@dataclass(frozen=True)
class VersionAudit:
    family: str
    version: str
    problems: tuple[str, ...]
    blob_proof: str = ""  # how the blob was proven: "server CRC32" | "sha256 re-hash"
    incomplete: bool = False


@dataclass(frozen=True)
class StoreAudit:
    versions: tuple[VersionAudit, ...]
    channels: tuple[ChannelStatus, ...]

    @property
    def ok(self) -> bool:
        return not any(v.problems for v in self.versions) and not any(
            c.problem for c in self.channels
        )

    def describe(self) -> str:
        lines = []
        for v in self.versions:
            if v.incomplete:
                lines.append(f"INCOMPLETE {v.family} {v.version}: no manifest (prune removes it)")
            elif v.problems:
                lines += [f"BAD {v.family} {v.version}: {p}" for p in v.problems]
            else:
                lines.append(f"ok  {v.family} {v.version} (blob by {v.blob_proof})")
        for c in self.channels:
            state = f"BAD channel {c.family}/{c.channel}: {c.problem}" if c.problem else ""
            lines.append(state or f"ok  channel {c.family}/{c.channel} -> {c.version}")
        kept = [v for v in self.versions if not v.incomplete]
        bad = sum(1 for v in kept if v.problems) + sum(1 for c in self.channels if c.problem)
        lines.append(
            f"{len(kept)} version(s), {len(self.channels)} channel(s) checked: "
            + ("all good" if not bad else f"{bad} damaged (see docs/store.md, Repair)")
        )
        return "\n".join(lines)


def _sums_problems(backend: StoreBackend, family: str, version: str, sha256: str) -> list[str]:
    """SHA256SUMS must name the blob with the manifest's sha256, and each report's bytes."""
    try:
        text = backend.get_bytes(layout.sums_key(family, version)).decode(errors="replace")
    except ObjectMissing:
        return ["SHA256SUMS is missing"]
    problems = []
    listed = {}
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    blob = layout.blob_name(family, version)
    if listed.pop(blob, None) != sha256:
        problems.append(f"SHA256SUMS does not give the manifest's sha256 for {blob}")
    for name, digest in sorted(listed.items()):
        try:
            data = backend.get_bytes(layout.image_prefix(family, version) + name)
        except (ObjectMissing, StoreError):
            problems.append(f"report {name} listed in SHA256SUMS is missing")
            continue
        if hashlib.sha256(data).hexdigest() != digest:
            problems.append(f"report {name} does not match its sha256 in SHA256SUMS")
    return problems


def audit_version(
    backend: StoreBackend, family: str, version: str, allowed_signers: Path, rehash: bool
) -> VersionAudit:
    # What makes the version unusable to a reader (unparseable, another family or version,
    # the blob's size), named beside the signature's verdict, never hidden behind it.
    found = layout.examine(backend, family, version)
    unusable = [f"manifest: unusable: {found}"] if isinstance(found, str) else []
    try:
        doc, _, _ = fetch_verified_manifest(backend, family, version, allowed_signers)
    except (SignatureError, StoreError) as exc:
        return VersionAudit(family, version, (f"manifest: {exc}", *unusable))
    facts = BlobFacts.of_manifest(doc)
    problem, how = check_blob(backend, layout.blob_key(family, version), facts, rehash=rehash)
    problems = unusable + ([f"blob: {problem}"] if problem else [])
    problems += _sums_problems(backend, family, version, facts.sha256)
    reports = doc.get("store", {}).get("reports") or []
    for name in reports if isinstance(reports, list) else []:
        if backend.size(layout.image_prefix(family, version) + str(name)) is None:
            problems.append(f"report {name} named in the manifest is missing")
    return VersionAudit(family, version, tuple(dict.fromkeys(problems)), how)


def audit_store(
    backend: StoreBackend,
    allowed_signers: Path,
    family: str | None = None,
    *,
    rehash: bool = False,
    on_version: Callable[[VersionAudit], None] | None = None,
) -> StoreAudit:
    """Check every version (of `family`, or all) and every channel pointer."""
    if family is not None:
        layout.check_name("family", family)
    if not allowed_signers.is_file():
        raise SignatureError(
            f"allowed_signers file {allowed_signers} does not exist "
            "(hint: set store.allowed_signers; see docs/store.md)"
        )
    audits = []
    for fam, versions in sorted(layout.scan_versions(backend, family).items()):
        for ver, has_manifest in sorted(versions.items()):
            if not has_manifest:
                audits.append(VersionAudit(fam, ver, (), incomplete=True))
                continue
            result = audit_version(backend, fam, ver, allowed_signers, rehash)
            if on_version is not None:
                on_version(result)
            audits.append(result)
    damaged = {(a.family, a.version): "that version is damaged" for a in audits if a.problems}
    records = layout.visible_images(backend, family)
    statuses = channel_statuses(backend, records, allowed_signers, family, damaged)
    return StoreAudit(tuple(audits), tuple(statuses))
