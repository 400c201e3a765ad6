"""The installed packages a sealed manifest records (imagefactory.verify writes them), parsed.

rpm entries are `name-version-release.arch` (rpm's %{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}:
no epoch; a name may hold dashes, a version or release never does, an arch no dot);
dpkg entries are `name=version arch`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from imagefactory.errors import FactoryError
from imagefactory.store import api

FORMATS = ("rpm", "dpkg")
NO_ARCH = "(none)"  # rpm's %{ARCH} of packages without one (gpg-pubkey)


class ManifestFieldError(FactoryError):
    """A manifest field a report needs is missing or malformed; names the field."""

    def __init__(self, field: str, message: str, where: str = "") -> None:
        self.field, self.message = field, message
        super().__init__(f"{where}: {field}: {message}" if where else f"{field}: {message}")

    def at(self, where: str) -> ManifestFieldError:
        """The same error, naming the file (or object) the manifest came from."""
        return ManifestFieldError(self.field, self.message, where)


@dataclass(frozen=True, order=True)
class Package:
    name: str
    version: str  # rpm: version-release; dpkg: the Debian version (epoch included)
    arch: str  # "" when the package has none


def parse_entry(fmt: str, entry: str) -> Package | None:
    """One entry of the manifest's `packages`; None if it is not of `fmt`'s shape."""
    if fmt == "rpm":
        nvr, dot, arch = entry.rpartition(".")
        parts = nvr.rsplit("-", 2)
        if not dot or len(parts) != 3 or not all(parts) or not arch or " " in entry:
            return None
        return Package(parts[0], f"{parts[1]}-{parts[2]}", "" if arch == NO_ARCH else arch)
    if fmt == "dpkg":
        name_version, _, arch = entry.partition(" ")
        name, eq, version = name_version.partition("=")
        if not eq or not name or not version or not arch or " " in arch:
            return None
        return Package(name, version, arch)
    return None


def packages_of(manifest: dict[str, Any]) -> tuple[str, list[Package]] | None:
    """(format, packages) recorded in a manifest, None when it records none (not verified,
    or verified before packages were recorded). A malformed list raises ManifestFieldError."""
    entries = manifest.get("packages")
    if entries is None:
        return None
    fmt = manifest.get("packages_format")
    if fmt not in FORMATS:
        if not entries:
            return None
        raise ManifestFieldError("packages_format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
    if not isinstance(entries, list):
        raise ManifestFieldError("packages", "must be a list of strings")
    out = []
    for i, entry in enumerate(entries):
        pkg = parse_entry(str(fmt), entry) if isinstance(entry, str) else None
        if pkg is None:
            shape = "name-version-release.arch" if fmt == "rpm" else "name=version arch"
            raise ManifestFieldError(f"packages[{i}]", f"{entry!r} is not {shape}")
        out.append(pkg)
    return str(fmt), out


def image_sha256(manifest: dict[str, Any]) -> str:
    image = manifest.get("image")
    sha = image.get("sha256") if isinstance(image, dict) else None
    if not isinstance(sha, str) or len(sha) != 64:
        raise ManifestFieldError("image.sha256", "missing or not 64 hex digits")
    return sha.lower()


def build_finished(manifest: dict[str, Any]) -> datetime | None:
    """build.finished as an aware time, None if missing or not ISO 8601."""
    build = manifest.get("build")
    text = build.get("finished") if isinstance(build, dict) else None
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def version_label(manifest: dict[str, Any]) -> str:
    """The published version; before publishing, the version publish will give it (derived
    the same way from build.finished and the image sha256), else the sha256's first 12 hex."""
    version = manifest.get("version")
    if isinstance(version, str) and version:
        return version
    sha = image_sha256(manifest)
    finished = build_finished(manifest)
    return api.derive_version(finished, sha) if finished else sha[:12]


def layer_keys(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, key) of each layer, in build order; entries without both are skipped."""
    layers = manifest.get("layers")
    out = []
    for layer in layers if isinstance(layers, list) else []:
        if isinstance(layer, dict):
            name, key = layer.get("name"), layer.get("key")
            if isinstance(name, str) and isinstance(key, str):
                out.append((name, key))
    return out
