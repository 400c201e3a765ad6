"""Every blob write is proven after it lands (a dedupe copy, a repair upload), by the same
proof as before reuse; a server's whole-object SHA-256 is that proof where the server keeps
one (detected from its GetObjectAttributes answer)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from imagefactory.store import layout
from imagefactory.store.backend import StoreBackend, StoreError
from imagefactory.store.blob_check import BlobFacts, check_blob
from imagefactory.store.publish import publish_image
from imagefactory.store.pull import pull_image
from imagefactory.store.s3_backend import S3Backend
from imagefactory.store.s3_multipart import whole_object_sha256
from tests.loopback_s3 import LoopbackS3
from tests.storekit import SigningKeys, make_sealed_image

pytestmark = pytest.mark.integration
MIB = 1024 * 1024
LATER = datetime(2026, 11, 30, tzinfo=UTC)


def _damage(backend: StoreBackend, key: str) -> None:
    """Same size, one byte flipped in the middle (what a size check cannot see)."""
    data = bytearray(backend.get_bytes(key))
    data[len(data) // 2] ^= 0xFF
    backend.put_bytes(key, bytes(data))


def _damaging(backend: StoreBackend, method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's `method` writes, then the written object is damaged (a faulty server)."""
    real = getattr(backend, method)

    def write(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        _damage(backend, args[1] if method == "copy" else args[0])
        return out

    monkeypatch.setattr(backend, method, write)


def test_a_copy_that_lands_damaged_is_not_published(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dedupe copy is proven after it is written: damaged, it is replaced by an upload."""
    first = publish_image(
        backend, make_sealed_image(tmp_path / "a", size=6 * MIB, seed=61), keys.private_key
    )
    later = make_sealed_image(tmp_path / "b", size=6 * MIB, seed=61, finished=LATER)
    _damaging(backend, "copy", monkeypatch)
    res = publish_image(backend, later, keys.private_key, show_progress=False)
    assert (res.bytes_uploaded, res.deduplicated) == (6 * MIB, "")
    assert res.notes[0].startswith(
        f"the copy of {layout.blob_key('persistence', first.version)} to "
        f"{layout.blob_key('persistence', res.version)} does not hold the image ("
    )
    got = pull_image(
        backend, "persistence", tmp_path / "hv", keys.allowed_signers, version=res.version
    )
    assert got.path.read_bytes() == (later / "persistence.qcow2").read_bytes()


def test_a_repair_that_lands_damaged_fails(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repaired blob is proven after the upload: still damaged, publish fails saying so."""
    sealed = make_sealed_image(tmp_path / "s", size=6 * MIB + 3, seed=62)
    first = publish_image(backend, sealed, keys.private_key, show_progress=False)
    blob = layout.blob_key("persistence", first.version)
    _damage(backend, blob)
    _damaging(backend, "upload_file", monkeypatch)
    with pytest.raises(StoreError, match=r"still not the sealed image: the (blob's|server's)"):
        publish_image(backend, sealed, keys.private_key, show_progress=False)


def test_s3_copy_is_proven_by_the_servers_sha256_where_it_keeps_one(
    s3_server: LoopbackS3, new_bucket: str, keys: SigningKeys, tmp_path: Path
) -> None:
    """moto computes a whole-object SHA-256 for the copy: that proves it; SeaweedFS keeps
    none for a copy: its CRC32 does (each server as its GetObjectAttributes answer shows)."""
    backend = S3Backend(s3_server.settings(new_bucket), s3_server.credentials())
    publish_image(
        backend, make_sealed_image(tmp_path / "a", size=6 * MIB, seed=63), keys.private_key
    )
    later = make_sealed_image(tmp_path / "b", size=6 * MIB, seed=63, finished=LATER)
    res = publish_image(backend, later, keys.private_key, show_progress=False)
    assert res.deduplicated == "copied in store"
    blob = layout.blob_key("persistence", res.version)
    doc = json.loads(backend.get_bytes(layout.manifest_key("persistence", res.version)))
    facts = BlobFacts.of_manifest(doc)
    expected = {"moto": "server SHA-256", "seaweedfs": "server CRC32"}[s3_server.name]
    assert check_blob(backend, blob, facts) == ("", expected)


def test_a_multipart_blob_has_no_whole_object_sha256(
    s3_server: LoopbackS3, new_bucket: str, keys: SigningKeys, tmp_path: Path
) -> None:
    """An uploaded blob (CRC32 parts) is not taken for having a SHA-256 of the whole."""
    backend = S3Backend(s3_server.settings(new_bucket), s3_server.credentials())
    res = publish_image(
        backend, make_sealed_image(tmp_path / "a", size=6 * MIB, seed=64), keys.private_key
    )
    blob = layout.blob_key("persistence", res.version)
    assert whole_object_sha256(backend.client, new_bucket, blob) is None


def test_a_wrong_whole_object_sha256_is_damage(
    s3_server: LoopbackS3, new_bucket: str, keys: SigningKeys, tmp_path: Path
) -> None:
    """A server SHA-256 that differs from the manifest's is named, without a download."""
    backend = S3Backend(s3_server.settings(new_bucket), s3_server.credentials())
    if s3_server.name != "moto":
        pytest.skip(f"{s3_server.name} keeps no SHA-256 for a copy (see the test above)")
    publish_image(backend, make_sealed_image(tmp_path / "a", size=MIB, seed=65), keys.private_key)
    later = make_sealed_image(tmp_path / "b", size=MIB, seed=65, finished=LATER)
    res = publish_image(backend, later, keys.private_key, show_progress=False)
    blob = layout.blob_key("persistence", res.version)
    true = whole_object_sha256(backend.client, new_bucket, blob)
    assert true == res.sha256
    problem = check_blob(backend, blob, BlobFacts("0" * 64, MIB))
    assert problem == (
        f"the server's SHA-256 of the blob is {true}, the manifest says {'0' * 64}",
        "server SHA-256",
    )
