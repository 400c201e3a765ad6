"""Publish a sealed image directory: blobs first, signed manifest last, dedupe by sha256."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagefactory.errors import ConfigError, Problem
from imagefactory.store import layout
from imagefactory.store.backend import ObjectMissing, Receipt, StoreBackend, StoreError
from imagefactory.store.blob_check import BlobFacts, check_blob
from imagefactory.store.channels import write_pointer
from imagefactory.store.signing import sign_bytes
from imagefactory.store.transfer_meter import Progress

SEALED_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class PublishResult:
    family: str
    version: str
    sha256: str
    bytes_uploaded: int  # image bytes sent from this host (0 when deduplicated)
    deduplicated: str  # "" | "same version" | "copied in store"
    seconds: float
    channel: str | None
    notes: tuple[str, ...] = ()  # repairs made and damaged blobs not reused


@dataclass(frozen=True)
class SealedImage:
    """A sealed image directory, checked: the manifest fields we need and the files it names."""

    directory: Path
    manifest: dict[str, Any]
    image_path: Path
    reports: tuple[Path, ...]

    @property
    def family(self) -> str:
        return str(self.manifest["family"])

    @property
    def sha256(self) -> str:
        return str(self.manifest["image"]["sha256"]).lower()

    @property
    def size(self) -> int:
        return int(self.manifest["image"]["size"])


def _field(doc: dict[str, Any], dotted: str) -> Any:
    cur: Any = doc
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def load_sealed(directory: Path) -> SealedImage:
    """Read and check `<dir>/manifest.json`; every problem is reported with file and field."""
    mpath = directory / SEALED_MANIFEST
    where = str(mpath)
    try:
        doc = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise ConfigError(
            [
                Problem(
                    where,
                    ".",
                    "sealed manifest not found",
                    "publish a directory produced by the build",
                )
            ]
        ) from None
    except ValueError as exc:
        raise ConfigError([Problem(where, ".", f"not valid JSON: {exc}")]) from None
    if not isinstance(doc, dict):
        raise ConfigError([Problem(where, ".", "must be a JSON object")])
    problems: list[Problem] = []
    family, file = _field(doc, "family"), _field(doc, "image.file")
    sha, size = _field(doc, "image.sha256"), _field(doc, "image.size")
    if not isinstance(family, str) or not layout.NAME_RE.match(family):
        problems.append(Problem(where, "family", f"missing or invalid: {family!r}"))
    if not isinstance(file, str) or "/" in file or not file:
        problems.append(Problem(where, "image.file", f"missing or not a file name: {file!r}"))
    if (
        not isinstance(sha, str)
        or len(sha) != 64
        or any(c not in "0123456789abcdefABCDEF" for c in sha)
    ):
        problems.append(Problem(where, "image.sha256", "missing or not 64 hex digits"))
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        problems.append(Problem(where, "image.size", f"missing or not a positive int: {size!r}"))
    if problems:
        raise ConfigError(problems)
    image_path = directory / str(file)
    try:
        actual = image_path.stat().st_size
    except FileNotFoundError:
        raise ConfigError([Problem(where, "image.file", f"{image_path} does not exist")]) from None
    if actual != size:
        raise ConfigError(
            [Problem(where, "image.size", f"says {size} bytes but {image_path} has {actual}")]
        )
    reports = []
    for dotted in ("compliance.report", "compliance.arf", "verification.report", "sbom"):
        name = _field(doc, dotted)
        if isinstance(name, str) and name:
            path = directory / name
            if "/" in name or not path.is_file():
                raise ConfigError(
                    [Problem(where, dotted, f"report {name!r} not found in {directory}")]
                )
            reports.append(path)
    return SealedImage(directory, doc, image_path, tuple(reports))


def _finished(sealed: SealedImage) -> datetime:
    text = _field(sealed.manifest, "build.finished")
    if isinstance(text, str):
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return when if when.tzinfo else when.replace(tzinfo=UTC)
        except ValueError:
            pass
    raise ConfigError(
        [
            Problem(
                str(sealed.directory / SEALED_MANIFEST),
                "build.finished",
                "missing or not an ISO 8601 time",
                "the version is derived from it",
            )
        ]
    )


def _check_verified(sealed: SealedImage, allow_unverified: bool) -> bool:
    """True when publishing an unverified image by override (recorded in the manifest)."""
    ver = sealed.manifest.get("verification")
    if isinstance(ver, dict) and ver.get("passed") is True:
        return False
    if allow_unverified:
        return True
    state = "did not pass" if isinstance(ver, dict) else "was not run"
    raise StoreError(
        f"{sealed.directory}: verification {state}; refusing to publish "
        "(hint: fix the image, or pass --allow-unverified to override; the "
        "override is recorded in the manifest)"
    )


def _find_duplicate(
    backend: StoreBackend, sealed: SealedImage, version: str, notes: list[str]
) -> tuple[str, BlobFacts] | None:
    """A blob already in the store with the same content (from the sha256 index), proven to
    hold it; a twin that fails the proof is named in `notes` and not used."""
    try:
        entry = json.loads(backend.get_bytes(layout.index_key(sealed.sha256)))
        key = str(entry["blob"])
    except (ObjectMissing, ValueError, KeyError, TypeError):
        return None
    if key == layout.blob_key(sealed.family, version):
        return None  # our own leftover from a killed publish: upload it again
    crc, part = entry.get("crc32"), entry.get("part_size")
    facts = BlobFacts(
        sealed.sha256,
        sealed.size,
        crc if isinstance(crc, str) else None,
        part if isinstance(part, int) and not isinstance(part, bool) and part > 0 else None,
    )
    problem, _ = check_blob(backend, key, facts, local=sealed.image_path)
    if problem:
        notes.append(
            f"not copied from {key}: {problem}; uploaded this image instead "
            "(run `invoke store.verify` to find the damaged version)"
        )
        return None
    return key, facts


def _repair_blob(
    backend: StoreBackend,
    sealed: SealedImage,
    existing: layout.ImageRecord,
    notes: list[str],
    show_progress: bool,
) -> int:
    """Re-publishing a version whose blob is damaged uploads the blob again (same bytes, same
    part size, so the signed manifest stays true); returns the bytes uploaded."""
    facts = BlobFacts.of_manifest(existing.manifest)
    problem, _ = check_blob(backend, existing.blob, facts, local=sealed.image_path)
    if not problem:
        return 0
    bar = Progress(f"repair {sealed.family}", sealed.size, enabled=show_progress)
    receipt = backend.upload_file(existing.blob, sealed.image_path, bar, facts.part_size)
    bar.close()
    if receipt.sha256 != sealed.sha256:
        raise StoreError(
            f"{sealed.image_path}: sha256 is {receipt.sha256} but the manifest says "
            f"{sealed.sha256} (image changed after sealing?); the damaged blob is left as it was"
        )
    # The same proof as before reuse, now of what the store holds after the upload.
    after, _ = check_blob(backend, existing.blob, facts, local=sealed.image_path)
    if after:
        raise StoreError(
            f"{existing.blob}: uploaded again but the store's copy is still not the sealed "
            f"image: {after} (the server damages what it stores?)"
        )
    notes.append(f"repaired {existing.blob}: {problem}; uploaded it again")
    return sealed.size


def _copy_proven(
    backend: StoreBackend, sealed: SealedImage, twin: tuple[str, BlobFacts], blob: str
) -> tuple[Receipt | None, str]:
    """Copy the twin to `blob` in the store and prove the copy as the twin was proven:
    (its receipt, "") or (None, the problem; the copy is removed again)."""
    src, facts = twin
    backend.copy(src, blob)
    # What the server keeps for the copy (a copy may carry another checksum form).
    crc = backend.stored_crc32(blob)
    same = crc is not None and facts.crc32 is not None and crc == facts.crc32
    proof = BlobFacts(sealed.sha256, sealed.size, crc if same else None, facts.part_size)
    problem, _ = check_blob(backend, blob, proof, local=sealed.image_path)
    if problem:
        backend.delete(blob)
        return None, problem
    return Receipt(sealed.sha256, crc, facts.part_size if same else None), ""


def publish_image(
    backend: StoreBackend,
    sealed_dir: Path,
    signing_key: Path,
    *,
    channel: str | None = None,
    allow_unverified: bool = False,
    show_progress: bool = True,
    extra_reports: Mapping[str, bytes] | None = None,
) -> PublishResult:
    """Publish a sealed image directory to the store and optionally point a channel at it.
    `extra_reports` (file name -> bytes, e.g. a changelog) go beside the sealed dir's own."""
    start = datetime.now(UTC)
    sealed = load_sealed(sealed_dir)
    family = sealed.family
    if channel is not None:
        layout.check_name("channel", channel)
    override = _check_verified(sealed, allow_unverified)
    version = layout.derive_version(_finished(sealed), sealed.sha256)
    # A key that cannot sign (missing, passphrase) should fail before gigabytes move.
    sign_bytes(b"imagefactory signing check\n", signing_key)
    backend.check()
    notes: list[str] = []

    def result(uploaded: int, dedup: str, manifest_sha256: str) -> PublishResult:
        if channel is not None:
            write_pointer(backend, family, version, channel, signing_key, manifest_sha256)
        elapsed = (datetime.now(UTC) - start).total_seconds()
        return PublishResult(
            family, version, sealed.sha256, uploaded, dedup, elapsed, channel, tuple(notes)
        )

    existing = layout.load_visible(backend, family, version)
    if existing is not None:
        if existing.sha256 != sealed.sha256:
            raise StoreError(f"{backend.describe()}: {family} {version} exists with other content")
        if channel is not None and backend.size(layout.revocation_key(family, version)) is not None:
            # No allowed_signers here to judge the record: any record stops the channel move.
            raise StoreError(
                f"{family} {version} is already published and has a revocation record; not "
                f"moving {channel} to it (hint: invoke images)"
            )
        repaired = _repair_blob(backend, sealed, existing, notes, show_progress)
        return result(repaired, "" if repaired else "same version", existing.manifest_sha256)
    prefix = layout.image_prefix(family, version)
    # Leftovers of a publish that was killed: unfinished uploads are dropped and the
    # version is completed below (its objects are rewritten in order).
    backend.discard_abandoned(prefix)

    blob = layout.blob_key(family, version)
    uploaded, dedup = 0, ""
    receipt: Receipt | None = None
    if (twin := _find_duplicate(backend, sealed, version, notes)) is not None:
        receipt, problem = _copy_proven(backend, sealed, twin, blob)
        if receipt is not None:
            dedup = "copied in store"
        else:
            notes.append(
                f"the copy of {twin[0]} to {blob} does not hold the image ({problem}); "
                "uploaded this image instead"
            )
    if receipt is None:
        bar = Progress(f"publish {family}", sealed.size, enabled=show_progress)
        receipt = backend.upload_file(blob, sealed.image_path, bar)
        bar.close()
        uploaded = sealed.size
        if receipt.sha256 != sealed.sha256:
            backend.delete(blob)
            raise StoreError(
                f"{sealed.image_path}: sha256 is {receipt.sha256} but the manifest says "
                f"{sealed.sha256}; nothing published (image changed after sealing?)"
            )
    index = {"blob": blob, "size": sealed.size}
    if receipt.crc32:
        index |= {"crc32": receipt.crc32, "part_size": receipt.part_size}
    backend.put_bytes(layout.index_key(sealed.sha256), json.dumps(index).encode())

    sums = [f"{sealed.sha256}  {layout.blob_name(family, version)}"]
    files = {r.name: r.read_bytes() for r in sealed.reports}
    for name, data in (extra_reports or {}).items():
        if "/" in name or name in files or name in ("manifest.json", "SHA256SUMS"):
            raise StoreError(f"report name {name!r} is not a new plain file name")
        files[name] = data
    for name, data in files.items():
        backend.put_bytes(prefix + name, data)
        sums.append(f"{hashlib.sha256(data).hexdigest()}  {name}")
    backend.put_bytes(layout.sums_key(family, version), ("\n".join(sums) + "\n").encode())

    doc = dict(sealed.manifest)
    doc["image"] = {**sealed.manifest["image"], "sha256": sealed.sha256}
    doc["version"] = version
    doc["store"] = {
        "blob": layout.blob_name(family, version),
        "published": start.isoformat(timespec="seconds"),
        "publisher": layout.actor(),
        "unverified_override": override,
        "reports": list(files),
    }
    if receipt.crc32:
        doc["store"] |= {"blob_crc32": receipt.crc32, "part_size": receipt.part_size}
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    # Signature before manifest: the manifest's appearance is the commit point.
    backend.put_bytes(layout.signature_key(family, version), sign_bytes(data, signing_key))
    backend.put_bytes(layout.manifest_key(family, version), data)
    return result(uploaded, dedup, hashlib.sha256(data).hexdigest())
