"""What changed between two versions of an image: packages added, removed, upgraded and
downgraded (ordered as rpm or dpkg order them), and layers rebuilt, new or dropped.

Packages are matched by (name, arch). Several versions of one name and arch (installonly
kernels) are matched version by version: those in both are unchanged, and only a single
version left on each side counts as an upgrade or downgrade; the rest are added or removed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from imagefactory.report.packages import Package, layer_keys, packages_of, version_label
from imagefactory.report.vercmp import compare_versions


@dataclass(frozen=True)
class PackageChange:
    name: str
    arch: str
    old: str | None  # None: added
    new: str | None  # None: removed


@dataclass(frozen=True)
class LayerChange:
    name: str
    old_key: str | None  # None: a layer the old version did not have
    new_key: str | None  # None: dropped


@dataclass(frozen=True)
class Changelog:
    family: str
    old_version: str | None  # None: the first version on its channel
    new_version: str
    added: tuple[PackageChange, ...] = ()
    removed: tuple[PackageChange, ...] = ()
    upgraded: tuple[PackageChange, ...] = ()
    downgraded: tuple[PackageChange, ...] = ()
    layers: tuple[LayerChange, ...] = ()  # rebuilt (key changed), new, dropped
    notes: tuple[str, ...] = ()  # why part of the comparison could not be made

    @property
    def first(self) -> bool:
        return self.old_version is None

    @property
    def unchanged(self) -> bool:
        parts = (self.added, self.removed, self.upgraded, self.downgraded, self.layers)
        return not self.first and not any(parts)


def _by_key(pkgs: list[Package]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for p in pkgs:
        out.setdefault((p.name, p.arch), set()).add(p.version)
    return out


_KINDS = ("added", "removed", "upgraded", "downgraded")


def _diff_packages(
    fmt: str, old: list[Package], new: list[Package]
) -> dict[str, tuple[PackageChange, ...]]:
    added: list[PackageChange] = []
    removed: list[PackageChange] = []
    up: list[PackageChange] = []
    down: list[PackageChange] = []
    before, after = _by_key(old), _by_key(new)
    for key in sorted(before.keys() | after.keys()):
        gone = sorted(before.get(key, set()) - after.get(key, set()))
        came = sorted(after.get(key, set()) - before.get(key, set()))
        if len(gone) == 1 and len(came) == 1:
            change = PackageChange(*key, gone[0], came[0])
            (up if compare_versions(fmt, came[0], gone[0]) > 0 else down).append(change)
            continue
        removed += [PackageChange(*key, v, None) for v in gone]
        added += [PackageChange(*key, None, v) for v in came]
    return dict(zip(_KINDS, map(tuple, (added, removed, up, down)), strict=True))


def _diff_layers(old: dict[str, Any], new: dict[str, Any]) -> list[LayerChange]:
    before, after = dict(layer_keys(old)), layer_keys(new)
    out = [LayerChange(n, before.get(n), k) for n, k in after if before.get(n) != k]
    names = {n for n, _ in after}
    return out + [LayerChange(n, k, None) for n, k in layer_keys(old) if n not in names]


def diff_manifests(old: dict[str, Any] | None, new: dict[str, Any]) -> Changelog:
    """The changelog from `old` (None: no earlier version on the channel) to `new`.
    A malformed package list raises ManifestFieldError naming the field."""
    family, new_version = str(new.get("family", "")), version_label(new)
    if old is None:
        return Changelog(family, None, new_version)
    notes = []
    changes: dict[str, tuple[PackageChange, ...]] = {}
    recorded_old, recorded_new = packages_of(old), packages_of(new)
    if recorded_old is None or recorded_new is None:
        which = [
            v
            for v, r in ((version_label(old), recorded_old), (new_version, recorded_new))
            if r is None
        ]
        notes.append(f"packages not compared: {' and '.join(which)} recorded none")
    elif recorded_old[0] != recorded_new[0]:
        notes.append(
            f"packages not compared: {recorded_old[0]} packages before, {recorded_new[0]} now"
        )
    else:
        changes = _diff_packages(recorded_new[0], recorded_old[1], recorded_new[1])
    return Changelog(
        family,
        version_label(old),
        new_version,
        **changes,
        layers=tuple(_diff_layers(old, new)),
        notes=tuple(notes),
    )


def _short(key: str | None) -> str:
    return key[:12] if key else "-"


def _arch(c: PackageChange) -> str:
    return f" ({c.arch})" if c.arch else ""


def render_markdown(
    changelog: Changelog, old_version: str | None = None, new_version: str | None = None
) -> str:
    """The changelog as Markdown; the versions default to those the changelog names."""
    old = old_version or changelog.old_version
    new = new_version or changelog.new_version
    title = f"# {changelog.family} {new}"
    if changelog.first or old is None:
        return f"{title}\n\nfirst version on this channel\n"
    lines = [title, "", f"Changes since {old}.", ""]
    if changelog.unchanged and not changelog.notes:
        lines += ["No package or layer changed.", ""]
    sections: list[tuple[str, tuple[PackageChange, ...], str]] = [
        ("Upgraded", changelog.upgraded, "{name}{arch}: {old} -> {new}"),
        ("Downgraded", changelog.downgraded, "{name}{arch}: {old} -> {new}"),
        ("Added", changelog.added, "{name}{arch}: {new}"),
        ("Removed", changelog.removed, "{name}{arch}: {old}"),
    ]
    for heading, changes, fmt in sections:
        if changes:
            lines += [f"## {heading} packages ({len(changes)})", ""]
            lines += [
                "- " + fmt.format(name=c.name, arch=_arch(c), old=c.old, new=c.new) for c in changes
            ]
            lines.append("")
    if changelog.layers:
        lines += [f"## Layers rebuilt ({len(changelog.layers)})", ""]
        for layer in changelog.layers:
            if layer.old_key is None:
                lines.append(f"- {layer.name}: new ({_short(layer.new_key)})")
            elif layer.new_key is None:
                lines.append(f"- {layer.name}: dropped (was {_short(layer.old_key)})")
            else:
                lines.append(f"- {layer.name}: {_short(layer.old_key)} -> {_short(layer.new_key)}")
        lines.append("")
    if changelog.notes:
        lines += ["## Notes", "", *(f"- {n}" for n in changelog.notes), ""]
    return "\n".join(lines)


def to_json(changelog: Changelog) -> bytes:
    """The changelog as JSON (sorted keys: the same changelog always gives the same bytes)."""
    doc = {**asdict(changelog), "first": changelog.first}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
