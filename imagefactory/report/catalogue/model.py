"""What the catalogue page shows, collected from the store through its trust chain.

Every manifest is checked against allowed_signers (as `invoke images` and pull check it); one
that fails is still listed, so it can be found, but marked untrusted in words, its claims
(score, verification) flagged, no files copied from it and no changelog made against it. A
channel is shown as pointing at a version only when its pointer verified; its history (kept
inside the signed pointer) only then too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagefactory.report.changelog import Changelog, diff_manifests
from imagefactory.report.packages import ManifestFieldError
from imagefactory.store import api

COPY_LIMIT = 8 * 1024 * 1024  # report files up to this size are copied into the site
_FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# family -> version -> reason (store_revocations reads them from the store)
Revocations = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class SiteFile:
    """A report kept beside a version: copied into the site (data) or named by its store key."""

    label: str
    name: str
    store_key: str
    size: int
    data: bytes | None  # None: larger than COPY_LIMIT, not copied


@dataclass(frozen=True)
class VersionEntry:
    family: str
    version: str
    built: str  # build.finished as recorded
    published: str  # store.published
    size: int
    sha256: str
    score: float | None
    verification: str  # in words: "passed (12 tests)", "failed (1 of 12 tests)", ...
    build_seconds: float | None
    problem: str  # "" when the manifest's signature verified; else why it is not trusted
    channels: tuple[str, ...] = ()  # channels whose verified pointer names this version
    files: tuple[SiteFile, ...] = ()
    changes: Changelog | None = None  # from the previous version, when both are trusted
    change_note: str = ""  # why there is no changelog
    revoked: str | None = None  # the reason, when the version is revoked

    @property
    def trusted(self) -> bool:
        return not self.problem


@dataclass(frozen=True)
class HistoryEntry:
    version: str
    promoted: str
    by: str


@dataclass(frozen=True)
class ChannelEntry:
    family: str
    channel: str
    version: str  # what the pointer names ("" if unreadable)
    problem: str  # "" when the pointer verified and its target is trusted
    promoted: str = ""
    by: str = ""
    signer: str = ""
    history: tuple[HistoryEntry, ...] = ()  # newest first, as the pointer keeps it
    history_note: str = ""  # why no history is shown

    @property
    def trusted(self) -> bool:
        return not self.problem


@dataclass(frozen=True)
class FamilyEntry:
    name: str
    versions: tuple[VersionEntry, ...]  # oldest first
    channels: tuple[ChannelEntry, ...]


@dataclass(frozen=True)
class Catalogue:
    store: str  # the store's description (bucket or directory)
    generated: str  # UTC time the site was made
    families: tuple[FamilyEntry, ...]


def _field(doc: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = doc
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def verification_words(doc: Mapping[str, Any]) -> str:
    ver = doc.get("verification")
    if _field(doc, "store.unverified_override"):
        return "not passed: published by override"
    if not isinstance(ver, Mapping):
        return "not run"
    tests, failed = ver.get("tests"), ver.get("failed")
    if ver.get("passed") is True:
        return f"passed ({tests} tests)" if isinstance(tests, int) else "passed"
    if isinstance(tests, int) and isinstance(failed, int):
        return f"failed ({failed} of {tests} tests)"
    return "failed"


def build_seconds(doc: Mapping[str, Any]) -> float | None:
    """build.finished - build.started, None if either is missing or not an ISO time."""
    try:
        start = datetime.fromisoformat(str(_field(doc, "build.started")).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(_field(doc, "build.finished")).replace("Z", "+00:00"))
        seconds = (end - start).total_seconds()
    except (ValueError, TypeError):
        return None
    return seconds if seconds >= 0 else None


def _labels(doc: Mapping[str, Any]) -> dict[str, str]:
    """File name -> what it is, from the manifest fields that name reports."""
    roles = (
        ("sbom", "SBOM (CycloneDX JSON)"),
        ("compliance.report", "CIS report (HTML)"),
        ("compliance.arf", "CIS results (ARF XML)"),
        ("verification.report", "test results (JUnit XML)"),
    )
    out = {"changelog.md": "changelog (Markdown)", "changelog.json": "changelog (JSON)"}
    for dotted, label in roles:
        name = _field(doc, dotted)
        if isinstance(name, str):
            out[name] = label
    return out


def _files(backend: api.StoreBackend, doc: Mapping[str, Any], family: str) -> list[SiteFile]:
    prefix = api.image_prefix(family, str(doc["version"]))
    labels = _labels(doc)
    names = _field(doc, "store.reports")
    out = []
    for name in names if isinstance(names, list) else []:
        if not isinstance(name, str) or not _FILE_NAME_RE.match(name):
            continue  # publish writes plain names only; anything else is not a file to copy
        key = prefix + name
        size = backend.size(key)
        if size is None:
            continue  # missing: store.verify reports it
        data = backend.get_bytes(key) if size <= COPY_LIMIT else None
        out.append(SiteFile(labels.get(name, name), name, key, size, data))
    return sorted(out, key=lambda f: (f.label, f.name))


def _verify(
    backend: api.StoreBackend, rec: api.ImageRecord, signers: Path
) -> tuple[dict[str, Any] | None, str]:
    """(verified manifest, "") or (None, why it is not trusted)."""
    try:
        doc, data, _ = api.fetch_verified_manifest(backend, rec.family, rec.version, signers)
    except (api.SignatureError, api.StoreError) as exc:
        return None, str(exc)
    if hashlib.sha256(data).hexdigest() != rec.manifest_sha256:
        return None, "manifest changed while the page was being made"
    return doc, ""


def _changes(
    prev: tuple[str, dict[str, Any] | None] | None, cur: tuple[str, dict[str, Any] | None]
) -> tuple[Changelog | None, str]:
    if prev is None:
        return None, "first published version"
    if prev[1] is None or cur[1] is None:
        which = prev[0] if prev[1] is None else cur[0]
        return None, f"not compared: the manifest of {which} is not trusted"
    try:
        return diff_manifests(prev[1], cur[1]), ""
    except ManifestFieldError as exc:
        return None, f"not compared: {exc}"


def _channel(backend: api.StoreBackend, st: api.ChannelStatus) -> ChannelEntry:
    base = ChannelEntry(st.family, st.channel, st.version, st.problem, signer=st.signer)
    if st.problem:
        return dataclasses.replace(base, history_note="not shown: the pointer is not trusted")
    try:
        doc = api.read_channel(backend, st.family, st.channel) or {}
    except api.StoreError as exc:
        return dataclasses.replace(base, history_note=f"not shown: {exc}")
    if doc.get("sequence") != st.sequence or doc.get("version") != st.version:
        return dataclasses.replace(
            base, history_note="not shown: the pointer moved while the page was made"
        )
    raw = doc.get("history")
    history = tuple(
        HistoryEntry(str(h.get("version", "")), str(h.get("promoted", "")), str(h.get("by", "")))
        for h in (raw if isinstance(raw, list) else [])
        if isinstance(h, dict)
    )
    return ChannelEntry(
        st.family,
        st.channel,
        st.version,
        "",
        str(doc.get("promoted", "")),
        str(doc.get("by", "")),
        st.signer,
        history,
        "" if history else "none: the channel has pointed at this version only",
    )


def store_revocations(
    backend: api.StoreBackend, families: list[str], allowed_signers: Path
) -> dict[str, dict[str, str]]:
    """family -> version -> what the page says: the reason of a verified record; a record
    that does not verify still marks the version (promote and the fleet refuse it too)."""
    out: dict[str, dict[str, str]] = {}
    for family in families:
        for version, rec in api.read_revocations(backend, family, allowed_signers).items():
            out.setdefault(family, {})[version] = (
                rec.reason if rec.verified else f"record does not verify ({rec.problem})"
            )
    return out


def collect(
    backend: api.StoreBackend,
    allowed_signers: Path,
    revocations: Revocations | None = None,
    now: datetime | None = None,
) -> Catalogue:
    """Every visible version and channel pointer of the store, checked against allowed_signers;
    revoked versions are marked from the store's revocation records, or from `revocations`
    (family -> version -> reason) when given."""
    if not allowed_signers.is_file():
        raise api.SignatureError(
            f"allowed_signers file {allowed_signers} does not exist "
            "(hint: set store.allowed_signers; see docs/store.md)"
        )
    records = api.visible_images(backend)
    checked = {(r.family, r.version): _verify(backend, r, allowed_signers) for r in records}
    bad = {k: "its manifest is not trusted" for k, (_, why) in checked.items() if why}
    statuses = api.channel_statuses(backend, records, allowed_signers, None, bad)
    channels = [_channel(backend, st) for st in statuses]
    pointing: dict[tuple[str, str], list[str]] = {}
    for ch in channels:
        if ch.trusted:
            pointing.setdefault((ch.family, ch.version), []).append(ch.channel)
    revoked = (
        revocations
        if revocations is not None
        else store_revocations(backend, sorted({r.family for r in records}), allowed_signers)
    )
    by_family: dict[str, list[VersionEntry]] = {}
    previous: dict[str, tuple[str, dict[str, Any] | None]] = {}
    for rec in records:  # sorted by family, then version: oldest first
        doc, problem = checked[(rec.family, rec.version)]
        shown = doc if doc is not None else rec.manifest  # claims of an untrusted one: flagged
        changes, note = _changes(previous.get(rec.family), (rec.version, doc))
        previous[rec.family] = (rec.version, doc)
        by_family.setdefault(rec.family, []).append(
            VersionEntry(
                rec.family,
                rec.version,
                str(_field(shown, "build.finished") or ""),
                str(_field(shown, "store.published") or ""),
                rec.size,
                rec.sha256,
                rec.score,
                verification_words(shown),
                build_seconds(shown),
                problem,
                tuple(sorted(pointing.get((rec.family, rec.version), []))),
                tuple(_files(backend, doc, rec.family)) if doc is not None else (),
                changes,
                note,
                revoked.get(rec.family, {}).get(rec.version),
            )
        )
    names = sorted(set(by_family) | {c.family for c in channels})
    families = tuple(
        FamilyEntry(
            name,
            tuple(by_family.get(name, [])),
            tuple(sorted((c for c in channels if c.family == name), key=lambda c: c.channel)),
        )
        for name in names
    )
    when = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    return Catalogue(backend.describe(), when, families)
