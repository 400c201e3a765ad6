"""A backup counts only once verified: its object read back and hashed against the signed
manifest while `mbstream -x` unpacks it into scratch space, `mariabackup --prepare`, a
throwaway mariadbd on the prepared copy (own loopback address and socket), and CHECKSUM TABLE
of every user table compared with the source's. The result is signed as verified.json."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from imagefactory.fleet.backups import (
    BackupError,
    BackupTarget,
    load_manifest,
    table_checksums,
)
from imagefactory.fleet.mariadb_local import LocalServer, ServerError
from imagefactory.store.api import StoreError


@dataclass(frozen=True)
class Scratch:
    """Where restore tests run: a directory with room for one backup, and the address and
    port their throwaway server listens on."""

    root: Path
    ip: str = "127.0.0.1"
    port: int = 33306


@dataclass(frozen=True)
class Verification:
    ok: bool
    reason: str = ""


def _unpack(target: BackupTarget, key: str, into: Path) -> tuple[str, int]:
    """Stream the object into `mbstream -x`, hashing it on the way: (sha256, size)."""
    into.mkdir(parents=True)
    proc = subprocess.Popen(
        ["mbstream", "-x", "-C", str(into)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    digest, size = hashlib.sha256(), 0
    try:
        for chunk in target.backend.iter_from(key, 0):
            digest.update(chunk)
            size += len(chunk)
            try:
                proc.stdin.write(chunk)
            except BrokenPipeError:
                break
    except StoreError as exc:
        proc.kill()
        raise BackupError(f"{key}: {exc}") from None
    finally:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        proc.wait()
    if proc.returncode != 0:
        raise BackupError(f"mbstream -x failed (exit {proc.returncode})")
    return digest.hexdigest(), size


def _restore_checksums(data: Path, scratch: Scratch) -> dict[str, str]:
    prepared = subprocess.run(
        ["mariabackup", "--prepare", f"--target-dir={data}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if prepared.returncode != 0:
        tail = " ".join(prepared.stderr.strip().splitlines()[-1:])
        raise BackupError(f"mariabackup --prepare failed: {tail}")
    # The socket lives in a short path of its own: a socket path is limited to 107 bytes.
    short = Path(tempfile.mkdtemp(prefix="ifrr-"))
    server = LocalServer(short, data, scratch.ip, scratch.port)
    try:
        server.start()
        return table_checksums(lambda q: server.sql(q) or "")
    except ServerError as exc:
        raise BackupError(f"restore test server: {exc}") from None
    finally:
        server.stop()
        shutil.rmtree(short, ignore_errors=True)


def verify_backup(
    target: BackupTarget, group: str, node: str, period: str, scratch: Scratch
) -> Verification:
    """Check one backup end to end and sign the outcome beside it. No manifest (or one whose
    signature fails): nothing is written, the backup is not verified."""
    try:
        manifest = load_manifest(target, group, node, period)
    except BackupError as exc:
        return Verification(False, str(exc))
    scratch.root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="restore-", dir=scratch.root))
    try:
        key = target.key(group, node, period, "backup.xbstream")
        sha, size = _unpack(target, key, work / "data")
        if (sha, size) != (manifest.sha256, manifest.size):
            result = Verification(False, f"object is not the one its manifest describes ({sha})")
        else:
            restored = _restore_checksums(work / "data", scratch)
            differ = sorted(
                name
                for name in set(restored) | set(manifest.checksums)
                if restored.get(name) != manifest.checksums.get(name)
            )
            result = Verification(
                not differ, f"tables differ from the source: {', '.join(differ)}" if differ else ""
            )
    except BackupError as exc:
        result = Verification(False, str(exc))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    target.put_signed(
        target.key(group, node, period, "verified.json"),
        {
            "ok": result.ok,
            "reason": result.reason,
            "sha256": manifest.sha256,
            "verified": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    return result
