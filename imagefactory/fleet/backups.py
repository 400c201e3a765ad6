"""Backups of round-robin database members in the image store, each beside its signed
manifest, and the signed record of its verification (backup_verify.py):

backups/<group>/<node>/<period>/backup.xbstream        mariabackup --stream=xbstream output
backups/<group>/<node>/<period>/manifest.json(.sig)    node, group, period, position, sha256,
                                                       size, created, the source's checksums
backups/<group>/<node>/<period>/verified.json(.sig)    the re-read hash and restore test result

The stream goes from the member's stdout through this host into the store, one part at a time;
no store credential ever reaches the member.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagefactory.errors import FactoryError
from imagefactory.fleet.dbmember import BackupStream, DbMember
from imagefactory.store.api import (
    SignatureError,
    StoreBackend,
    StoreError,
    sign_bytes,
    verify_bytes,
)
from imagefactory.util.fsutil import canonical_json

SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
_POSITION = re.compile(
    r"binlog position: filename '([^']*)', position '(\d+)'(?:, GTID of the last change '([^']*)')?"
)


class BackupError(FactoryError):
    """A backup could not be taken, stored or read back."""


@dataclass(frozen=True)
class BackupTarget:
    """Where backups go and the keys that sign and check their records."""

    backend: StoreBackend
    signing_key: Path
    allowed_signers: Path
    prefix: str = "backups"

    def key(self, group: str, node: str, period: str, name: str) -> str:
        return f"{self.prefix}/{group}/{node}/{period}/{name}"

    def put_signed(self, key: str, doc: dict[str, Any]) -> None:
        data = (canonical_json(doc) + "\n").encode()
        self.backend.put_bytes(key + ".sig", sign_bytes(data, self.signing_key))
        self.backend.put_bytes(key, data)

    def get_signed(self, key: str) -> dict[str, Any]:
        """A signed record; BackupError if missing or its signature does not hold."""
        try:
            data = self.backend.get_bytes(key)
            signature = self.backend.get_bytes(key + ".sig")
            verify_bytes(data, signature, self.allowed_signers, key)
            doc = json.loads(data)
        except (StoreError, SignatureError, ValueError) as exc:
            raise BackupError(f"{key}: {exc}") from None
        if not isinstance(doc, dict):
            raise BackupError(f"{key}: not a JSON object")
        return doc


@dataclass(frozen=True)
class Position:
    binlog_file: str = ""
    binlog_pos: int = 0
    gtid: str = ""


@dataclass(frozen=True)
class Manifest:
    node: str
    group: str
    period: str
    position: Position
    sha256: str
    size: int
    created: str
    checksums: dict[str, str]  # "db.table" -> CHECKSUM TABLE of the source after the backup

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Manifest:
        return cls(**{**doc, "position": Position(**doc["position"])})


def parse_position(stderr: str) -> Position:
    """The binlog position and GTID mariabackup prints at the end of a backup (none if the
    server writes no binary log)."""
    found = _POSITION.search(stderr)
    if found is None:
        return Position()
    return Position(found.group(1), int(found.group(2)), found.group(3) or "")


def user_tables(sql: Any) -> list[str]:
    """Every base table outside the system schemas, as `db`.`table`, sorted."""
    skip = ",".join(f"'{s}'" for s in SYSTEM_SCHEMAS)
    rows = sql(
        "SELECT table_schema, table_name FROM information_schema.tables "
        f"WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ({skip})"
    )
    names = [line.split("\t") for line in rows.splitlines() if line.strip()]
    return sorted(f"`{db}`.`{table}`" for db, table in names)


def table_checksums(sql: Any) -> dict[str, str]:
    tables = user_tables(sql)
    if not tables:
        return {}
    out: dict[str, str] = {}
    for line in sql("CHECKSUM TABLE " + ", ".join(tables)).splitlines():
        if line.strip():
            name, value = line.split("\t")
            out[name] = value
    return out


class _Counting:
    def __init__(self, stream: BackupStream) -> None:
        self._stream = stream
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.count += len(data)
        return data


def take_backup(
    target: BackupTarget, member: DbMember, group: str, period: str, now: datetime | None = None
) -> Manifest:
    """Stream a physical backup of `member` into the store and sign its manifest. The member
    should be read-only, so the checksums taken after it match what the backup holds."""
    obj = target.key(group, member.name, period, "backup.xbstream")
    stream = member.open_backup()
    reader = _Counting(stream)
    try:
        receipt = target.backend.upload_stream(obj, reader)
    except BaseException as exc:
        stream.finish()
        if isinstance(exc, (StoreError, OSError)):
            raise BackupError(f"{member.name} {period}: storing the backup failed: {exc}") from None
        raise
    status, stderr = stream.finish()
    if status != 0:
        target.backend.delete(obj)
        tail = " ".join(stderr.strip().splitlines()[-1:])
        raise BackupError(f"{member.name} {period}: mariabackup exit {status}: {tail}")
    manifest = Manifest(
        node=member.name,
        group=group,
        period=period,
        position=parse_position(stderr),
        sha256=receipt.sha256,
        size=reader.count,
        created=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
        checksums=table_checksums(member.sql),
    )
    target.put_signed(target.key(group, member.name, period, "manifest.json"), manifest.to_dict())
    return manifest


def load_manifest(target: BackupTarget, group: str, node: str, period: str) -> Manifest:
    doc = target.get_signed(target.key(group, node, period, "manifest.json"))
    try:
        return Manifest.from_dict(doc)
    except (TypeError, KeyError) as exc:
        raise BackupError(f"{group}/{node}/{period}: manifest has another shape: {exc}") from None


def object_digest(target: BackupTarget, key: str) -> tuple[str, int]:
    """(sha256, size) of a stored object, read back chunk by chunk."""
    digest, size = hashlib.sha256(), 0
    try:
        for chunk in target.backend.iter_from(key, 0):
            digest.update(chunk)
            size += len(chunk)
    except StoreError as exc:
        raise BackupError(f"{key}: {exc}") from None
    return digest.hexdigest(), size


class State(enum.StrEnum):
    VERIFIED = "verified"
    UNVERIFIED = "unverified"  # stored, never checked (or the check was cut short)
    FAILED = "failed"  # checked: the restore test failed
    CORRUPTED = "corrupted"  # the stored bytes are not those the manifest names
    NO_MANIFEST = "no manifest"  # missing, or its signature does not hold


def recorded_state(
    target: BackupTarget, group: str, node: str, period: str
) -> tuple[State, str, Manifest | None]:
    """What the signed records of one backup say, without reading the backup itself: signed
    manifest and a signed passing verification of the same bytes (VERIFIED here means only
    that; backup_state also re-hashes the object)."""
    try:
        manifest = load_manifest(target, group, node, period)
    except BackupError as exc:
        return State.NO_MANIFEST, str(exc), None
    try:
        record = target.get_signed(target.key(group, node, period, "verified.json"))
    except BackupError as exc:
        return State.UNVERIFIED, str(exc), manifest
    if not record.get("ok"):
        return State.FAILED, f"its verification failed: {record.get('reason', '?')}", manifest
    if record.get("sha256") != manifest.sha256:
        why = "its verification is of other bytes than its manifest"
        return State.UNVERIFIED, why, manifest
    return State.VERIFIED, "", manifest


def backup_state(target: BackupTarget, group: str, node: str, period: str) -> tuple[State, str]:
    """What one backup is worth now: signed manifest, signed passing verification of the
    same bytes, and the object still hashing to them. (state, why not verified)."""
    state, why, manifest = recorded_state(target, group, node, period)
    if state is not State.VERIFIED or manifest is None:
        return state, why
    try:
        sha, size = object_digest(target, target.key(group, node, period, "backup.xbstream"))
    except BackupError as exc:
        return State.CORRUPTED, str(exc)
    if (sha, size) != (manifest.sha256, manifest.size):
        why = f"the stored object hashes to {sha[:12]}, its manifest says {manifest.sha256[:12]}"
        return State.CORRUPTED, why
    return State.VERIFIED, ""


def is_verified(target: BackupTarget, group: str, node: str, period: str) -> tuple[bool, str]:
    state, why = backup_state(target, group, node, period)
    return state is State.VERIFIED, why


@dataclass(frozen=True)
class Listed:
    node: str
    period: str
    size: int | None
    verified: State
    why: str


def stored_periods(target: BackupTarget, group: str) -> list[tuple[str, str]]:
    """(node, period) of every backup of a group in the store, sorted."""
    prefix = f"{target.prefix}/{group}/"
    try:
        keys = target.backend.list_keys(prefix)
    except StoreError as exc:
        raise BackupError(f"listing {prefix}: {exc}") from None
    pairs = {tuple(k[len(prefix) :].split("/")[:2]) for k in keys if k.count("/") >= 4}
    return sorted((node, period) for node, period in pairs)


def list_backups(target: BackupTarget, group: str) -> list[Listed]:
    """Every backup of a group (by node, then period) with its state, checked now."""
    found = stored_periods(target, group)
    out = []
    for node, period in found:
        state, why = backup_state(target, group, node, period)
        size = target.backend.size(target.key(group, node, period, "backup.xbstream"))
        out.append(Listed(node, period, size, state, why))
    return out


def last_verified_records(target: BackupTarget, group: str) -> dict[str, str]:
    """Per member, the newest period whose signed records say verified (no re-hash: what
    fleet.status shows; fleet.backups re-checks the bytes)."""
    found = stored_periods(target, group)
    last: dict[str, str] = {}
    for node, period in reversed(found):  # newest period first per node
        if node not in last and recorded_state(target, group, node, period)[0] is State.VERIFIED:
            last[node] = period
    return last
