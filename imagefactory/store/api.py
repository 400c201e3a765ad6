"""The store's operations from StoreSettings alone, for code outside imagefactory.store.

Each call opens the configured backend (checked to be reachable) and runs one operation on it:
publish, pull, list images, promote, revoke, prune; describe_publish / describe_pull make one
line of a result. Revocation records are read through revocations and check_not_revoked (or
read_revocations on an open backend). Callers: the commands behind the invoke tasks and doctor
(imagefactory.commands),
the fleet, which pulls the templates of its VMs through it (imagefactory.fleet.templates),
the changelogs (imagefactory.report.published: the manifests they compare), the catalogue
page (imagefactory.report.catalogue: what it lists, read through the trust chain) and the build
(imagefactory.engine.remote: the remote layer cache, layer_cache). Code outside the store
imports only this module and the store's settings (a test keeps it so).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from imagefactory.store import layer_cache as layer_cache
from imagefactory.store.audit import StoreAudit, VersionAudit, audit_store
from imagefactory.store.backend import ObjectMissing as ObjectMissing
from imagefactory.store.backend import StoreBackend as StoreBackend
from imagefactory.store.backend import StoreError as StoreError
from imagefactory.store.channels import ChannelStatus as ChannelStatus
from imagefactory.store.channels import channel_statuses as channel_statuses
from imagefactory.store.channels import channels_at, promote, read_signed_channel
from imagefactory.store.channels import read_channel as read_channel
from imagefactory.store.compare import channel_manifest as channel_manifest
from imagefactory.store.compare import version_manifests as version_manifests
from imagefactory.store.fs_backend import FsBackend
from imagefactory.store.layout import VERSION_RE as VERSION_RE
from imagefactory.store.layout import ImageRecord as ImageRecord
from imagefactory.store.layout import check_name as check_name
from imagefactory.store.layout import derive_version as derive_version
from imagefactory.store.layout import image_prefix as image_prefix
from imagefactory.store.layout import visible_images as visible_images
from imagefactory.store.listing import images_report
from imagefactory.store.prune import apply_prune, plan_prune, plan_removal
from imagefactory.store.publish import PublishResult, publish_image
from imagefactory.store.pull import PullResult, pull_image, resolve_version
from imagefactory.store.revocation import Revocation as Revocation
from imagefactory.store.revocation import RevokedError as RevokedError
from imagefactory.store.revocation import read_revocation, refuse_revoked, revoke
from imagefactory.store.revocation import read_revocations as read_revocations
from imagefactory.store.s3_backend import S3Backend
from imagefactory.store.settings import Credentials, StoreKind, StoreSettings, load_credentials
from imagefactory.store.signing import SignatureError as SignatureError
from imagefactory.store.signing import sign_bytes as sign_bytes
from imagefactory.store.signing import verify_bytes as verify_bytes
from imagefactory.store.trust import fetch_verified_manifest as fetch_verified_manifest


def open_backend(settings: StoreSettings, creds: Credentials | None = None) -> StoreBackend:
    """The backend for `settings`, not yet checked to be reachable. An s3 store needs a key
    pair: `creds`, else the environment's (load_credentials), never the config file's."""
    match settings.kind:
        case StoreKind.FS:
            return FsBackend(settings.path)
        case StoreKind.S3:
            return S3Backend(settings, creds or load_credentials())


def open_store(settings: StoreSettings, create: bool = True) -> StoreBackend:
    """The configured backend (fs or s3), checked to be reachable and usable. With
    create=False (read-only commands: doctor, plan) a directory store that does not exist yet
    is judged by where it would be made, and not made."""
    backend = open_backend(settings)
    if isinstance(backend, FsBackend):
        backend.check(create=create)
    else:
        backend.check()
    return backend


def publish(
    settings: StoreSettings,
    sealed_dir: Path,
    channel: str | None = "nightly",
    allow_unverified: bool = False,
    show_progress: bool = True,
    extra_reports: Mapping[str, bytes] | None = None,
) -> PublishResult:
    """`invoke publish`: upload a sealed image dir, sign its manifest, move `channel` to it."""
    return publish_image(
        open_store(settings),
        sealed_dir,
        settings.signing_key.expanduser(),
        channel=channel,
        allow_unverified=allow_unverified,
        show_progress=show_progress,
        extra_reports=extra_reports,
    )


def channel_image_sha256(settings: StoreSettings, family: str, channel: str) -> str | None:
    """sha256 of the image `channel` points at (pointer and manifest verified), None if the
    channel was never set."""
    backend = open_store(settings)
    signers = settings.allowed_signers.expanduser()
    pointer = read_signed_channel(backend, family, channel, signers)
    if pointer is None:
        return None
    doc, data, _ = fetch_verified_manifest(backend, family, pointer.version, signers)
    if hashlib.sha256(data).hexdigest() != pointer.manifest_sha256:
        raise StoreError(
            f"{family} channel {channel!r}: its pointer names another manifest.json than "
            f"{pointer.version}'s (hint: invoke store.verify --family={family})"
        )
    return str(doc["image"]["sha256"])


def channel_versions(
    settings: StoreSettings, families: Iterable[str], channel: str
) -> dict[str, str]:
    """The version `channel` points at for each family, its signed pointer checked; nothing is
    downloaded."""
    backend = open_store(settings)
    return {
        family: resolve_version(
            backend, family, channel, None, settings.allowed_signers.expanduser()
        )[0]
        for family in sorted(set(families))
    }


def pull(
    settings: StoreSettings,
    family: str,
    channel: str | None = "stable",
    version: str | None = None,
    show_progress: bool = True,
) -> PullResult:
    """`invoke pull`: verify, download (resumable) and install a template on this hypervisor;
    a revoked version (or one whose revocation record does not verify) is refused first."""
    backend = open_store(settings)
    signers = settings.allowed_signers.expanduser()
    wanted, _ = resolve_version(backend, family, channel, version, signers)
    refuse_revoked(read_revocation(backend, family, wanted, signers), "pulling it")
    return pull_image(
        backend,
        family,
        settings.image_dir.expanduser(),
        signers,
        channel=channel,
        version=version,  # resolved again there: its result names the channel's pointer
        show_progress=show_progress,
    )


def images(settings: StoreSettings, family: str | None = None) -> str:
    """`invoke images`: families, versions, channels, sizes, scores; manifest and pointer
    signatures checked against store.allowed_signers, untrusted ones marked."""
    return images_report(open_store(settings), family, settings.allowed_signers.expanduser())


def promote_version(settings: StoreSettings, family: str, version: str, channel: str) -> str:
    """`invoke promote`: point a channel at a version whose manifest signature checks out
    against store.allowed_signers, with a pointer signed by store.signing_key (history kept
    in the pointer)."""
    doc = promote(
        open_store(settings),
        family,
        version,
        channel,
        settings.signing_key.expanduser(),
        allowed_signers=settings.allowed_signers.expanduser(),
    )
    return f"{family}: {channel} -> {doc['version']} (sequence {doc['sequence']})"


def revoke_version(settings: StoreSettings, family: str, version: str, reason: str) -> str:
    """`invoke revoke`: a record signed by store.signing_key that `version` must not be
    deployed; says so if it already was, and warns of channels still pointing at it."""
    backend = open_store(settings)
    res = revoke(
        backend,
        family,
        version,
        reason,
        settings.signing_key.expanduser(),
        allowed_signers=settings.allowed_signers.expanduser(),
    )
    rec = res.record
    if res.already:
        lines = [f"{family} {version} is already revoked: {rec.reason} (at {rec.revoked_at})"]
    else:
        lines = [f"revoked {family} {version}: {rec.reason}"]
    if res.replaced:
        lines.append(f"  replaced a record that did not verify: {res.replaced}")
    pointing = channels_at(backend, family, version)
    if pointing:
        lines.append(
            f"warning: channel(s) {', '.join(pointing)} of {family} still point at {version}; "
            f"promote another version (invoke promote --family={family} --version=... "
            "--channel=...): promote and the fleet refuse this one"
        )
    return "\n".join(lines)


def revocations(settings: StoreSettings, family: str) -> dict[str, Revocation]:
    """version -> revocation record of `family`, each checked against store.allowed_signers."""
    return read_revocations(open_store(settings), family, settings.allowed_signers.expanduser())


def check_not_revoked(settings: StoreSettings, versions: Mapping[str, str], action: str) -> None:
    """Raise RevokedError if any family's version (family -> version) has a revocation
    record, valid or not; `action` names what is refused (e.g. "deploying it")."""
    backend = open_store(settings)
    signers = settings.allowed_signers.expanduser()
    for family, version in sorted(versions.items()):
        refuse_revoked(read_revocation(backend, family, version, signers), action)


def prune(settings: StoreSettings, keep: int = 5, apply: bool = False) -> str:
    """`invoke prune`: keep the last `keep` per family and channel targets; dry run unless apply."""
    backend = open_store(settings)
    plan = plan_prune(backend, keep)
    if apply:
        apply_prune(backend, plan)
    return plan.describe(applied=apply)


def remove_version(settings: StoreSettings, family: str, version: str, apply: bool = False) -> str:
    """`invoke store.remove`: delete one version no channel points at (dry run unless
    apply); the manifest goes first, so the version is invisible at once."""
    backend = open_store(settings)
    plan = plan_removal(backend, family, version)
    if apply:
        apply_prune(backend, plan)
    return plan.describe(applied=apply)


def verify_store(
    settings: StoreSettings, family: str | None = None, rehash: bool = False
) -> StoreAudit:
    """`invoke store.verify`: every kept version's manifest signature, blob, SHA256SUMS and
    reports, and every channel pointer (progress on stderr, one line per version)."""

    def progress(v: VersionAudit) -> None:
        state = "BAD" if v.problems else "ok"
        print(f"checked {v.family} {v.version}: {state}", file=sys.stderr, flush=True)

    return audit_store(
        open_store(settings),
        settings.allowed_signers.expanduser(),
        family,
        rehash=rehash,
        on_version=progress,
    )


def describe_publish(res: PublishResult) -> str:
    """One line for the task to print after publish."""
    how = (
        f"deduplicated ({res.deduplicated}), 0 bytes uploaded"
        if res.deduplicated
        else (f"{res.bytes_uploaded} bytes uploaded in {res.seconds:.1f}s")
    )
    chan = f", channel {res.channel}" if res.channel else ""
    lines = [f"published {res.family} {res.version}: {how}{chan}"]
    return "\n".join(lines + [f"  {note}" for note in res.notes])


def describe_pull(res: PullResult) -> str:
    """One line for the task to print after pull."""
    if res.already_installed:
        return f"{res.path} already installed (signed by {res.signer})"
    resumed = f", resumed at {res.resumed_from} bytes" if res.resumed_from else ""
    return f"installed {res.path} (signed by {res.signer}{resumed})"
