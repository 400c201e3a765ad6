"""The pinned SSG content: version, datastream files and their sha256, the source profile."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from imagefactory.errors import ConfigError, FactoryError, Problem
from imagefactory.util.fsutil import sha256_file

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class PinnedDatastream:
    """One datastream file name inside the content dir and the sha256 it must have."""

    name: str
    sha256: str


@dataclass(frozen=True)
class SsgPin:
    """What the derivation runs against. Loaded from hardening/ssg-pin.yaml (or from config)."""

    version: str
    content_dir: Path
    source: PinnedDatastream
    source_profile: str
    target: PinnedDatastream

    @property
    def source_path(self) -> Path:
        return self.content_dir / self.source.name

    @property
    def target_path(self) -> Path:
        return self.content_dir / self.target.name


def _field(doc: dict[str, Any], key: str, file: str, path: str, problems: list[Problem]) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value.strip():
        problems.append(Problem(file, f"{path}{key}", "required non-empty string is missing"))
        return ""
    return value.strip()


def _datastream(
    doc: dict[str, Any], key: str, file: str, problems: list[Problem]
) -> PinnedDatastream:
    sub = doc.get(key)
    if not isinstance(sub, dict):
        problems.append(Problem(file, key, "must be a mapping with 'datastream' and 'sha256'"))
        return PinnedDatastream("", "")
    name = _field(sub, "datastream", file, f"{key}.", problems)
    digest = _field(sub, "sha256", file, f"{key}.", problems)
    if digest and not SHA256_RE.match(digest):
        problems.append(Problem(file, f"{key}.sha256", "must be 64 lowercase hex digits"))
    if "/" in name:
        problems.append(Problem(file, f"{key}.datastream", "a file name inside content_dir"))
    return PinnedDatastream(name, digest)


def load_pin(path: Path, content_dir: Path | None = None) -> SsgPin:
    """Load and validate the pin file; `content_dir` overrides the file's content_dir."""
    file = str(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([Problem(file, "", f"cannot read YAML: {exc}")]) from exc
    if not isinstance(doc, dict):
        raise ConfigError([Problem(file, "", "must be a YAML mapping")])
    problems: list[Problem] = []
    version = _field(doc, "ssg_version", file, "", problems)
    directory = _field(doc, "content_dir", file, "", problems)
    profile = _field(doc, "source_profile", file, "", problems)
    source = _datastream(doc, "source", file, problems)
    target = _datastream(doc, "target", file, problems)
    unknown = sorted(
        set(doc) - {"ssg_version", "content_dir", "source_profile", "source", "target"}
    )
    problems += [Problem(file, key, "unknown field") for key in unknown]
    if problems:
        raise ConfigError(problems)
    return SsgPin(version, content_dir or Path(directory), source, profile, target)


def verify_pin(pin: SsgPin, pin_file: str = "ssg pin") -> None:
    """Fail unless both datastreams exist and have the pinned sha256."""
    problems: list[Problem] = []
    for key, ds in (("source", pin.source), ("target", pin.target)):
        path = pin.content_dir / ds.name
        if not path.is_file():
            problems.append(
                Problem(
                    pin_file,
                    f"{key}.datastream",
                    f"{path} does not exist",
                    f"install SSG {pin.version} (Debian: ssg-nondebian) or set content_dir",
                )
            )
            continue
        actual = sha256_file(path)
        if actual != ds.sha256:
            problems.append(
                Problem(
                    pin_file,
                    f"{key}.sha256",
                    f"{path} has sha256 {actual}, pinned {ds.sha256}",
                    f"the installed SSG is not the pinned {pin.version}; re-pin after review",
                )
            )
    if problems:
        raise ConfigError(problems)


def check_benchmark_version(pin: SsgPin, found: str, path: Path) -> None:
    """The Benchmark's own version must equal the pinned SSG version."""
    if found != pin.version:
        raise FactoryError(
            f"{path}: Benchmark version is {found!r}, pinned ssg_version {pin.version!r}"
        )
