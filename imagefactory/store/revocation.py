"""Revocations: a small signed record saying a published version must not be deployed again.

revocations/<family>/<version>.json names family, version, reason, when (UTC) and by whom; it
is signed like a channel pointer (`<version>.json.sig` beside it), so a writer of the bucket
cannot forge one that is taken as valid. Promote and the fleet refuse a revoked version; a
record whose signature does not verify is reported as such and refused too (fail closed:
it may be a real revocation whose signature was damaged), until `invoke revoke` signs it again
or the operator deletes it. The version itself stays in the store: pull by exact version
still works, for forensics.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagefactory.store import layout
from imagefactory.store.backend import ObjectMissing, StoreBackend, StoreError
from imagefactory.store.signing import SignatureError, SignatureMismatch, sign_bytes, verify_bytes

REVOCATION_SCHEMA = 1
REASON_MAX = 300  # one line on a terminal and in a table
_RACE_PAUSE = 0.2  # seconds: revoke writes the signature, then the record


class RevokedError(StoreError):
    """An action refused because its version is revoked (or its record cannot be trusted)."""


@dataclass(frozen=True)
class Revocation:
    """One record as read; `verified` is True only if its signature checks out against
    allowed_signers and it names its own family and version (then `problem` is "")."""

    family: str
    version: str
    reason: str  # as the record says it: not to be trusted unless verified
    revoked_at: str  # ISO 8601, UTC
    by: str
    verified: bool
    signer: str = ""
    problem: str = ""

    def describe(self) -> str:
        """One line: what is revoked and why, or why the record is not trusted."""
        if self.verified:
            return (
                f"{self.family} {self.version} is revoked: {self.reason} "
                f"(at {self.revoked_at} by {self.by}, signed by {self.signer})"
            )
        return (
            f"{self.family} {self.version} has a revocation record that does not verify "
            f"({self.problem})"
        )


def check_reason(reason: str) -> str:
    """A reason is one printable line: it is shown in tables and refusal messages."""
    text = reason.strip()
    if not text:
        raise StoreError("--reason is empty: say why the version is revoked")
    if len(text) > REASON_MAX or any(not c.isprintable() for c in text):
        raise StoreError(f"--reason must be one line of at most {REASON_MAX} printable characters")
    return text


def _text(doc: dict[str, Any], name: str) -> str:
    value = doc.get(name)
    return value if isinstance(value, str) else ""


def _parse(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _untrusted(family: str, version: str, data: bytes, problem: str) -> Revocation:
    doc = _parse(data)
    return Revocation(
        family,
        version,
        _text(doc, "reason"),
        _text(doc, "revoked_at"),
        _text(doc, "by"),
        False,
        problem=problem,
    )


def read_revocation(
    backend: StoreBackend, family: str, version: str, allowed_signers: Path | None
) -> Revocation | None:
    """The record of `version`, verified if it can be, or None if it was never revoked.
    Without allowed_signers nothing is checked (the record is returned unverified)."""
    what = f"{family} {version} revocation record"
    for attempt in (1, 2):
        try:
            data = backend.get_bytes(layout.revocation_key(family, version))
        except ObjectMissing:
            return None
        if allowed_signers is None:
            return _untrusted(family, version, data, "signature not checked")
        try:
            sig = backend.get_bytes(layout.revocation_signature_key(family, version))
        except ObjectMissing:
            sig_key = layout.revocation_signature_key(family, version)
            problem = f"{what}: not signed ({sig_key} is missing)"
            return _untrusted(family, version, data, problem)
        try:
            signer = verify_bytes(data, sig, allowed_signers, what)
            break
        except SignatureMismatch as exc:
            if attempt == 2:
                return _untrusted(family, version, data, str(exc))
            time.sleep(_RACE_PAUSE)  # read between revoke's two writes: read both again
        except SignatureError as exc:
            return _untrusted(family, version, data, str(exc))
    doc = _parse(data)
    if doc.get("family") != family or doc.get("version") != version:
        problem = (
            f"{what}: signed, but for {doc.get('family')!r} {doc.get('version')!r} "
            "(copied from elsewhere?)"
        )
        return _untrusted(family, version, data, problem)
    reason, revoked_at = _text(doc, "reason"), _text(doc, "revoked_at")
    if not reason or not revoked_at:
        return _untrusted(family, version, data, f"{what}: signed, but lacks reason or revoked_at")
    return Revocation(family, version, reason, revoked_at, _text(doc, "by"), True, signer)


def read_revocations(
    backend: StoreBackend, family: str, allowed_signers: Path | None
) -> dict[str, Revocation]:
    """version -> its record, for every revocation record of `family` (verified or not)."""
    layout.check_name("family", family)
    out: dict[str, Revocation] = {}
    for key in backend.list_keys(f"revocations/{family}/"):
        name = key.rsplit("/", 1)[-1]
        version = name[: -len(".json")]
        # A lone .sig is an interrupted revoke (signature first): there is no record yet.
        if name.endswith(".json") and layout.VERSION_RE.match(version):
            rec = read_revocation(backend, family, version, allowed_signers)
            if rec is not None:
                out[version] = rec
    return out


def refuse_revoked(record: Revocation | None, action: str) -> None:
    """Raise RevokedError if `record` exists: `action` (e.g. "promoting it to stable") names
    what is refused. An unverified record is refused too, never taken as a valid one."""
    if record is None:
        return
    if record.verified:
        raise RevokedError(
            f"{record.family} {record.version} is revoked ({record.reason}; at "
            f"{record.revoked_at} by {record.by}); not {action}"
        )
    raise RevokedError(
        f"{record.describe()}; not {action} until it is repaired (hint: `invoke revoke` signs "
        "it again; docs/store.md, 'Revoking a version')"
    )


@dataclass(frozen=True)
class RevokeResult:
    record: Revocation
    already: bool  # a valid record was there: nothing written
    replaced: str = ""  # the problem of an unverified record that was signed again


def revoke(
    backend: StoreBackend,
    family: str,
    version: str,
    reason: str,
    signing_key: Path,
    *,
    allowed_signers: Path,
) -> RevokeResult:
    """Record, signed with `signing_key`, that `version` of `family` is revoked. The version
    must be in the store (its manifest there). A valid record already there is kept as it is
    (idempotent); one that does not verify is replaced."""
    layout.check_name("family", family)
    layout.check_version(version)
    text = check_reason(reason)
    if backend.size(layout.manifest_key(family, version)) is None:
        raise StoreError(
            f"{backend.describe()}: {family} {version} is not a published version; "
            "nothing revoked (hint: invoke images)"
        )
    old = read_revocation(backend, family, version, allowed_signers)
    if old is not None and old.verified:
        return RevokeResult(old, already=True)
    doc = {
        "schema": REVOCATION_SCHEMA,
        "family": family,
        "version": version,
        "reason": text,
        "revoked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "by": layout.actor(),
    }
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    signature = sign_bytes(data, signing_key)  # fails before anything is written
    backend.put_bytes(layout.revocation_signature_key(family, version), signature)
    backend.put_bytes(layout.revocation_key(family, version), data)
    new = read_revocation(backend, family, version, allowed_signers)
    if new is None or not new.verified:
        raise StoreError(
            f"{family} {version}: the revocation record was written but does not verify "
            f"against {allowed_signers} ({new.problem if new else 'gone'}); is "
            "store.signing_key's public half in store.allowed_signers?"
        )
    return RevokeResult(new, already=False, replaced=old.problem if old else "")
