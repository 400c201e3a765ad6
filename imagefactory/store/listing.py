"""`invoke images`: every published version with its channels, and what can be trusted.

Manifest and pointer signatures are checked against allowed_signers, as pull checks them;
a manifest that fails is still listed (so it can be found and repaired) but marked, and its
content (score, verification) is shown as unverified. A revoked version is marked with its
reason; a revocation record that does not verify is marked BAD and explained, never taken as
a valid revocation nor left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from imagefactory.store import layout
from imagefactory.store.backend import StoreBackend
from imagefactory.store.channels import ChannelStatus, channel_statuses
from imagefactory.store.revocation import Revocation, read_revocations
from imagefactory.store.transfer_meter import human_bytes
from imagefactory.store.trust import manifest_problems


@dataclass(frozen=True)
class ImageRow:
    family: str
    version: str
    channels: str  # "nightly,stable"; an untrusted pointer shows as "stable(unverified)"
    size: int
    score: float | None
    verified: str  # "yes" | "no" | "override"
    signed: str  # "yes" | "BAD" (manifest signature fails) | "-" (not checked)
    revoked: str = "-"  # "yes" | "BAD" (a record whose signature fails) | "-" (no record)


@dataclass(frozen=True)
class Listing:
    rows: list[ImageRow]
    channels: list[ChannelStatus]
    bad_manifests: dict[tuple[str, str], str]
    revocations: dict[tuple[str, str], Revocation] = field(default_factory=dict)
    # Versions whose manifest exists but cannot be used (pull and promote ignore them): why.
    unusable: dict[tuple[str, str], str] = field(default_factory=dict)


def _rows(
    records: list[layout.ImageRecord],
    statuses: list[ChannelStatus],
    bad: dict[tuple[str, str], str],
    checked: bool,
    revoked: dict[tuple[str, str], Revocation],
) -> list[ImageRow]:
    names: dict[tuple[str, str], list[str]] = {}
    for st in statuses:
        label = st.channel + ("(unverified)" if st.problem else "")
        names.setdefault((st.family, st.version), []).append(label)
    rows = []
    for rec in records:
        ver = rec.manifest.get("verification")
        verified = "yes" if isinstance(ver, dict) and ver.get("passed") is True else "no"
        if rec.manifest.get("store", {}).get("unverified_override"):
            verified = "override"
        signed = "-" if not checked else ("BAD" if (rec.family, rec.version) in bad else "yes")
        revocation = revoked.get((rec.family, rec.version))
        mark = "-" if revocation is None else ("yes" if revocation.verified else "BAD")
        rows.append(
            ImageRow(
                rec.family,
                rec.version,
                ",".join(sorted(names.get((rec.family, rec.version), []))),
                rec.size,
                rec.score,
                verified,
                signed,
                mark,
            )
        )
    return rows


def list_images(
    backend: StoreBackend, family: str | None = None, allowed_signers: Path | None = None
) -> list[ImageRow]:
    """Visible images with the channels pointing at them; without allowed_signers nothing
    is checked: every channel is shown as unverified and no manifest as signed."""
    return collect(backend, family, allowed_signers).rows


def collect(backend: StoreBackend, family: str | None, allowed_signers: Path | None) -> Listing:
    records, unusable = layout.scan_images(backend, family)
    bad = manifest_problems(backend, records, allowed_signers) if allowed_signers else {}
    why = dict.fromkeys(bad, "its manifest is not trusted")
    statuses = channel_statuses(backend, records, allowed_signers, family, why)
    revoked = {
        (fam, version): rec
        for fam in sorted({r.family for r in records})
        for version, rec in read_revocations(backend, fam, allowed_signers).items()
    }
    rows = _rows(records, statuses, bad, allowed_signers is not None, revoked)
    rows += [ImageRow(f, v, "", -1, None, "?", "?", "-") for f, v in unusable]
    rows.sort(key=lambda r: (r.family, r.version))
    return Listing(rows, statuses, bad, revoked, unusable)


def images_report(backend: StoreBackend, family: str | None, allowed_signers: Path | None) -> str:
    """The `invoke images` text: the table, then why any manifest or channel is untrusted."""
    listing = collect(backend, family, allowed_signers)
    return format_images(
        listing.rows, listing.channels, listing.bad_manifests, listing.revocations, listing.unusable
    )


def format_images(
    rows: list[ImageRow],
    statuses: list[ChannelStatus] | None = None,
    bad_manifests: dict[tuple[str, str], str] | None = None,
    revocations: dict[tuple[str, str], Revocation] | None = None,
    unusable: dict[tuple[str, str], str] | None = None,
) -> str:
    """A plain table for `invoke images`, then one line per unusable or untrusted manifest,
    untrusted pointer, revoked version and untrusted revocation record."""
    header = ("FAMILY", "VERSION", "CHANNELS", "SIZE", "SCORE", "VERIFIED", "SIGNED", "REVOKED")
    table = [header] + [
        (
            r.family,
            r.version,
            r.channels or "-",
            human_bytes(r.size) if r.size >= 0 else "?",
            ("-" if r.score is None else f"{r.score:.1f}") + ("?" if r.signed == "BAD" else ""),
            r.verified + ("?" if r.signed == "BAD" else ""),
            r.signed,
            r.revoked,
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    out = "\n".join(lines) if rows else "no images published"
    if unusable:
        out += (
            "\n\nunusable manifests (pull, promote and the channels ignore these versions; "
            "see `invoke store.verify`):\n"
            + "\n".join(f"  {f}/{v}: {why}" for (f, v), why in sorted(unusable.items()))
        )
    if bad_manifests:
        out += (
            "\n\nunverified manifests (their SCORE and VERIFIED are not trusted; pull and "
            "promote refuse them; see `invoke store.verify`):\n"
            + "\n".join(f"  {f}/{v}: {why}" for (f, v), why in sorted(bad_manifests.items()))
        )
    listed = {(r.family, r.version) for r in rows}
    shown = [rec for key, rec in sorted((revocations or {}).items()) if key in listed]
    if good := [rec for rec in shown if rec.verified]:
        out += "\n\nrevoked versions (promote and the fleet refuse them):\n" + "\n".join(
            f"  {r.family}/{r.version}: {r.reason} (at {r.revoked_at} by {r.by})" for r in good
        )
    if untrusted := [rec for rec in shown if not rec.verified]:
        out += (
            "\n\nrevocation records that do not verify (promote and the fleet refuse these "
            "versions until `invoke revoke` signs them again):\n"
            + "\n".join(f"  {r.family}/{r.version}: {r.problem}" for r in untrusted)
        )
    bad = [st for st in statuses or [] if st.problem]
    if bad:
        out += "\n\nunverified channel pointers (pull refuses them):\n" + "\n".join(
            f"  {st.family}/{st.channel} -> {st.version or '?'}: {st.problem}" for st in bad
        )
    return out
