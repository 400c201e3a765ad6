"""Builders for store and fleet tests and bench/bench_store.py: throwaway signing keys and sealed
image dirs (test support, not shipped: it lives under tests/).

Keys are generated at run time into a temporary directory; nothing secret is committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagefactory.report.sbom import write_sbom
from imagefactory.util.fsutil import sha256_file, write_json_atomic

PRINCIPAL = "builder@imagefactory.test"


@dataclass(frozen=True)
class SigningKeys:
    private_key: Path
    allowed_signers: Path
    principal: str


def make_signing_keys(directory: Path, principal: str = PRINCIPAL) -> SigningKeys:
    """A new ed25519 key without passphrase and an allowed_signers file that trusts it."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "signing_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", str(key)],
        check=True,
        capture_output=True,
    )
    pub = (directory / "signing_key.pub").read_text().split()
    allowed = directory / "allowed_signers"
    allowed.write_text(f'{principal} namespaces="imagefactory" {pub[0]} {pub[1]}\n')
    return SigningKeys(key, allowed, principal)


def write_random_file(path: Path, size: int, seed: int = 0) -> str:
    """`size` pseudo-random bytes (cheap to make, incompressible); returns their sha256."""
    digest = hashlib.sha256()
    block = hashlib.sha256(f"seed-{seed}".encode()).digest() * 4096  # 128 KiB
    block = os.urandom(len(block)) if seed < 0 else block
    counter = 0
    with path.open("wb") as fh:
        left = size
        while left:
            # Vary every block so no two blocks (and no two seeds) share content.
            chunk = (counter.to_bytes(8, "big") + block)[: min(left, len(block) + 8)]
            fh.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
            counter += 1
    return digest.hexdigest()


def make_sealed_image(
    directory: Path,
    family: str = "persistence",
    size: int = 1024 * 1024,
    *,
    seed: int = 0,
    passed: bool | None = True,
    finished: datetime | None = None,
    score: float | None = 97.1,
    extra: dict[str, Any] | None = None,
    qcow2: bool = False,
    packages: list[str] | None = None,
    packages_format: str = "rpm",
    sbom: bool = False,
) -> Path:
    """A sealed image directory as the build engine leaves it: image, reports, manifest.

    `packages` replaces the default list and records its `packages_format`, as verify does;
    `sbom` also writes the SBOM verify writes (sbom.cdx.json, named by the manifest).
    """
    directory.mkdir(parents=True, exist_ok=True)
    image = directory / f"{family}.qcow2"
    if qcow2:
        # A real (empty) qcow2 of `size` virtual bytes: small on disk, usable as a backing file.
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", str(image), str(size)],
            check=True,
            capture_output=True,
        )
        sha, size = sha256_file(image), image.stat().st_size
    else:
        sha = write_random_file(image, size, seed)
    finished = finished or datetime(2026, 11, 24, 10, 15, 0, tzinfo=UTC)
    compliance = None
    if score is not None:
        (directory / "compliance.html").write_text(f"<html>score {score}</html>\n")
        (directory / "compliance.arf.xml").write_text(f"<arf score='{score}'/>\n")
        compliance = {"score": score, "report": "compliance.html", "arf": "compliance.arf.xml"}
    verification = None
    if passed is not None:
        (directory / "junit.xml").write_text('<testsuite tests="12" failures="0"/>\n')
        verification = {
            "passed": passed,
            "tests": 12,
            "failed": 0 if passed else 1,
            "report": "junit.xml",
        }
    manifest: dict[str, Any] = {
        "schema": 1,
        "family": family,
        "os": "ol8",
        "image": {"file": image.name, "sha256": sha, "size": size, "format": "qcow2"},
        "layers": [{"name": "install", "key": "a" * 64}, {"name": "harden", "key": "b" * 64}],
        "tools": {"packer": "1.6.6", "qemu-img": "7.2.22"},
        "git": {"revision": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
        "build": {
            "started": finished.isoformat(),
            "finished": finished.isoformat(),
            "host": "build01",
        },
        "packages": ["bash-4.4.20", "openssh-server-8.0p1"],
        "compliance": compliance,
        "verification": verification,
        "custom_key": {"kept": True},
        **(extra or {}),
    }
    if packages is not None:
        manifest |= {"packages": packages, "packages_format": packages_format}
    if sbom:
        manifest["sbom"] = write_sbom(directory, manifest)
    write_json_atomic(directory / "manifest.json", manifest)
    return directory


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


class RecordingStore:
    """A store that records every request made to it (what a build asks of the store)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name == "describe":
            return attr

        def recorded(*args: Any, **kw: Any) -> Any:
            self.calls.append(f"{name} {args[0] if args else ''}".strip())
            return attr(*args, **kw)

        return recorded
