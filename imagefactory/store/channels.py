"""Channels (small pointer objects with history), the image listing, and pruning."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from imagefactory.store import layout
from imagefactory.store.backend import ObjectMissing, StoreBackend, StoreError
from imagefactory.store.progress import human_bytes

HISTORY_LIMIT = 100  # entries kept inside a pointer; older moves are dropped


def read_channel(backend: StoreBackend, family: str, channel: str) -> dict[str, Any] | None:
    """The channel pointer document, or None if the channel was never set."""
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


def promote(backend: StoreBackend, family: str, version: str, channel: str) -> dict[str, Any]:
    """Point `channel` of `family` at a visible version; the previous target goes to history."""
    layout.check_name("family", family)
    layout.check_name("channel", channel)
    layout.check_version(version)
    if layout.load_visible(backend, family, version) is None:
        raise StoreError(
            f"{backend.describe()}: {family} {version} is not a complete "
            "published image; cannot promote it"
        )
    old = read_channel(backend, family, channel)
    history: list[dict[str, Any]] = []
    if old is not None:
        if old["version"] == version:
            return old
        history = [{k: old.get(k) for k in ("version", "promoted", "by")}]
        history += list(old.get("history") or [])
    doc = {
        "schema": 1,
        "family": family,
        "channel": channel,
        "version": version,
        "promoted": datetime.now(UTC).isoformat(timespec="seconds"),
        "by": layout.actor(),
        "history": history[:HISTORY_LIMIT],
    }
    backend.put_bytes(
        layout.channel_key(family, channel),
        (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode(),
    )
    return doc


def all_channels(backend: StoreBackend) -> dict[tuple[str, str], str]:
    """(family, version) -> comma-separated channel names pointing at it."""
    out: dict[tuple[str, str], list[str]] = {}
    for key in backend.list_keys("channels/"):
        parts = key.split("/")
        if len(parts) != 3 or not parts[2].endswith(".json"):
            continue
        family, channel = parts[1], parts[2][: -len(".json")]
        doc = read_channel(backend, family, channel)
        if doc is not None:
            out.setdefault((family, str(doc["version"])), []).append(channel)
    return {k: ",".join(sorted(v)) for k, v in out.items()}


@dataclass(frozen=True)
class ImageRow:
    family: str
    version: str
    channels: str
    size: int
    score: float | None
    verified: str  # "yes" | "no" | "override"


def list_images(backend: StoreBackend, family: str | None = None) -> list[ImageRow]:
    """Visible images with the channels pointing at them."""
    channels = all_channels(backend)
    rows = []
    for rec in layout.visible_images(backend, family):
        ver = rec.manifest.get("verification")
        verified = "yes" if isinstance(ver, dict) and ver.get("passed") is True else "no"
        if rec.manifest.get("store", {}).get("unverified_override"):
            verified = "override"
        rows.append(
            ImageRow(
                rec.family,
                rec.version,
                channels.get((rec.family, rec.version), ""),
                rec.size,
                rec.score,
                verified,
            )
        )
    return rows


def format_images(rows: list[ImageRow]) -> str:
    """A plain table for `invoke images`."""
    header = ("FAMILY", "VERSION", "CHANNELS", "SIZE", "SCORE", "VERIFIED")
    table = [header] + [
        (
            r.family,
            r.version,
            r.channels or "-",
            human_bytes(r.size),
            "-" if r.score is None else f"{r.score:.1f}",
            r.verified,
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    return "\n".join(lines) if rows else "no images published"


@dataclass(frozen=True)
class PrunePlan:
    delete_versions: tuple[tuple[str, str], ...]  # complete images beyond the keep window
    incomplete: tuple[tuple[str, str], ...]  # versions without a valid manifest (killed publishes)
    abandoned_uploads: tuple[str, ...]
    keep: tuple[tuple[str, str], ...]

    def describe(self, applied: bool) -> str:
        verb = "deleted" if applied else "would delete"
        lines = [f"{verb} {f} {v}" for f, v in self.delete_versions]
        lines += [f"{verb} incomplete {f} {v}" for f, v in self.incomplete]
        lines += [f"{verb} unfinished upload {k}" for k in self.abandoned_uploads]
        lines += [f"keep {f} {v}" for f, v in self.keep]
        if not applied and (self.delete_versions or self.incomplete or self.abandoned_uploads):
            lines.append("dry run: nothing deleted (run again with --apply)")
        return "\n".join(lines) if lines else "store is empty"


def plan_prune(backend: StoreBackend, keep_last: int) -> PrunePlan:
    """Keep the newest `keep_last` images per family plus every channel target."""
    if keep_last < 1:
        raise StoreError("prune: --keep must be at least 1")
    pinned = set(all_channels(backend))
    delete: list[tuple[str, str]] = []
    incomplete: list[tuple[str, str]] = []
    keep: list[tuple[str, str]] = []
    for family, versions in sorted(layout.scan_versions(backend).items()):
        complete = []
        for version in sorted(versions):
            if layout.load_visible(backend, family, version) is not None:
                complete.append(version)
            else:
                incomplete.append((family, version))
        newest = set(complete[-keep_last:])
        for version in complete:
            target = keep if version in newest or (family, version) in pinned else delete
            target.append((family, version))
    return PrunePlan(
        tuple(delete), tuple(incomplete), tuple(backend.abandoned_uploads("images/")), tuple(keep)
    )


def apply_prune(backend: StoreBackend, plan: PrunePlan) -> None:
    """Delete what the plan lists: manifest first, so a half-pruned image is already invisible."""
    for family, version in plan.delete_versions + plan.incomplete:
        mkey = layout.manifest_key(family, version)
        backend.delete(mkey)
        for key in backend.list_keys(layout.image_prefix(family, version)):
            if key != mkey:
                backend.delete(key)
    backend.discard_abandoned("images/")
    _drop_stale_index(backend)


def _drop_stale_index(backend: StoreBackend) -> None:
    for key in backend.list_keys("sha256/"):
        try:
            blob = str(json.loads(backend.get_bytes(key))["blob"])
        except (ObjectMissing, ValueError, KeyError, TypeError):
            blob = ""
        if not blob or backend.size(blob) is None:
            backend.delete(key)
