"""S3-only behaviour: credentials, missing bucket, unreachable store, interop with awscli."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from imagefactory.errors import ConfigError
from imagefactory.store import api, layout
from imagefactory.store.backend import StoreError
from imagefactory.store.s3_backend import S3Backend, incomplete_uploads
from imagefactory.store.settings import (
    ENV_ACCESS,
    ENV_CREDENTIALS_FILE,
    ENV_SECRET,
    Credentials,
)
from tests.loopback_s3 import LoopbackS3
from tests.prereq import require_tool
from tests.storekit import SigningKeys, make_sealed_image

pytestmark = pytest.mark.integration
MIB = 1024 * 1024


def test_wrong_credentials_are_rejected(
    s3_server: LoopbackS3, new_bucket: str, keys: SigningKeys, tmp_path: Path
) -> None:
    settings = s3_server.settings(new_bucket, signing_key=keys.private_key)
    wrong = S3Backend(settings, Credentials(s3_server.access_key, "not-the-secret"))
    with pytest.raises(StoreError, match=r"credentials rejected") as err:
        wrong.check()
    assert "not-the-secret" not in str(err.value)
    sealed = make_sealed_image(tmp_path / "s", size=MIB)
    from imagefactory.store.publish import publish_image

    with pytest.raises(StoreError, match="credentials rejected"):
        publish_image(wrong, sealed, keys.private_key, show_progress=False)
    unknown = S3Backend(settings, Credentials("AKIANOSUCHKEY0000000", "x"))
    with pytest.raises(StoreError, match="credentials rejected"):
        unknown.list_keys("images/")
    right = S3Backend(settings, s3_server.credentials())
    assert right.list_keys("") == []


def test_credentials_from_file_through_api(
    s3_server: LoopbackS3,
    new_bucket: str,
    keys: SigningKeys,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cred = tmp_path / "s3.ini"
    cred.write_text(
        f"[s3]\naccess_key = {s3_server.access_key}\nsecret_key = {s3_server.secret_key}\n"
    )
    cred.chmod(0o600)
    monkeypatch.delenv(ENV_ACCESS, raising=False)
    monkeypatch.delenv(ENV_SECRET, raising=False)
    monkeypatch.setenv(ENV_CREDENTIALS_FILE, str(cred))
    settings = s3_server.settings(
        new_bucket,
        signing_key=keys.private_key,
        allowed_signers=keys.allowed_signers,
        image_dir=tmp_path / "hv",
    )
    res = api.publish(
        settings, make_sealed_image(tmp_path / "s", size=MIB), channel="stable", show_progress=False
    )
    listing = api.images(settings)
    assert "stable" in listing and "unverified" not in listing
    assert "sequence" in api.promote_version(settings, "persistence", res.version, "stable")
    got = api.pull(settings, "persistence", channel="stable", show_progress=False)
    assert got.version == res.version and got.path.exists()
    cred.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by other users"):
        api.images(settings)


def test_missing_bucket_is_clear(s3_server: LoopbackS3) -> None:
    absent = s3_server.unused_bucket_name()
    backend = S3Backend(s3_server.settings(absent), s3_server.credentials())
    with pytest.raises(StoreError, match=f"bucket '{absent}' does not exist"):
        backend.check()
    with pytest.raises(StoreError, match=f"bucket '{absent}' does not exist"):
        backend.get_bytes("channels/x/stable.json")


def test_unreachable_store_fails_fast(s3_server: LoopbackS3) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = s3_server.settings("images", endpoint=f"127.0.0.1:{port}")
    backend = S3Backend(settings, Credentials("a", "b"))
    start = time.monotonic()
    with pytest.raises(StoreError, match="store unreachable"):
        backend.check()
    assert time.monotonic() - start < 15


def test_awscli_downloads_published_image(
    s3_server: LoopbackS3,
    new_bucket: str,
    keys: SigningKeys,
    tmp_path: Path,
) -> None:
    aws = require_tool("aws")
    settings = s3_server.settings(new_bucket)
    backend = S3Backend(settings, s3_server.credentials())
    from imagefactory.store.publish import publish_image

    sealed = make_sealed_image(tmp_path / "s", size=12 * MIB + 7, seed=40)
    res = publish_image(backend, sealed, keys.private_key, show_progress=False)
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    out = tmp_path / "aws"
    prefix = layout.image_prefix("persistence", res.version)
    subprocess.run(
        [
            aws,
            "--endpoint-url",
            s3_server.url,
            "s3",
            "cp",
            "--recursive",
            f"s3://{new_bucket}/{prefix}",
            str(out),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    blob = out / layout.blob_name("persistence", res.version)
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == res.sha256
    check = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == 4  # image, compliance HTML and ARF, junit


def test_unfinished_multipart_uploads_are_listed_and_aborted(
    s3_server: LoopbackS3, new_bucket: str
) -> None:
    """Uploads started by another client (awscli) are found under a prefix and removed:
    exercises the only private minio-py calls against a real server."""
    aws = require_tool("aws")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    keys = ["images/a/1/a-1.qcow2", "images/a/1/a-1.qcow2", "images/b/2/b-2.qcow2", "other/x"]
    for key in keys:
        subprocess.run(
            [aws, "--endpoint-url", s3_server.url, "s3api", "create-multipart-upload",
             "--bucket", new_bucket, "--key", key],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
    backend = S3Backend(s3_server.settings(new_bucket), s3_server.credentials())
    assert backend.abandoned_uploads("images/a/") == keys[:2]
    assert backend.abandoned_uploads("images/") == keys[:3]
    assert backend.discard_abandoned("images/a/") == 2
    assert backend.abandoned_uploads("images/") == keys[2:3]
    assert backend.discard_abandoned("images/") == 1
    assert backend.discard_abandoned("images/") == 0
    assert [name for name, _ in incomplete_uploads(backend.client, new_bucket, "")] == ["other/x"]


def test_parts_go_up_with_crc32_and_the_server_combines_them(
    s3_server: LoopbackS3, new_bucket: str, tmp_path: Path
) -> None:
    """A multipart upload declares CRC32; the server's object checksum is ours, composite."""
    import zlib

    from imagefactory.store.s3_multipart import SentPart, composite_crc32, same_composite

    data = os.urandom(12 * MIB + 123)
    image = tmp_path / "img"
    image.write_bytes(data)
    backend = S3Backend(s3_server.settings(new_bucket, part_size=5 * MIB), s3_server.credentials())
    assert backend.upload_file("x.qcow2", image, None).sha256 == hashlib.sha256(data).hexdigest()
    pieces = [data[i : i + 5 * MIB] for i in range(0, len(data), 5 * MIB)]
    parts = [SentPart(n, "", zlib.crc32(p)) for n, p in enumerate(pieces, 1)]
    stat = backend.client.stat_object(
        new_bucket, "x.qcow2", extra_headers={"x-amz-checksum-mode": "ENABLED"}
    )
    # AWS, MinIO and SeaweedFS give the part count ("...==-3"); moto leaves it out.
    ours, theirs = composite_crc32(parts), stat.metadata["x-amz-checksum-crc32"]
    assert theirs in (ours, ours.removesuffix("-3"))
    assert same_composite(theirs, ours)
    got = backend.client.get_object(new_bucket, "x.qcow2").read()
    assert got == data


def test_a_failed_multipart_upload_is_aborted_on_the_server(
    s3_server: LoopbackS3, new_bucket: str
) -> None:
    """A source that ends early fails the upload and leaves no unfinished upload behind."""
    import io

    from imagefactory.store.s3_multipart import MultipartUpload

    backend = S3Backend(s3_server.settings(new_bucket), s3_server.credentials())
    upload = MultipartUpload(backend.client, new_bucket, "short", part_size=5 * MIB, workers=2)
    with pytest.raises(OSError, match="ended 2097152 bytes early"):
        upload.run(io.BytesIO(os.urandom(10 * MIB)), 12 * MIB)
    assert incomplete_uploads(backend.client, new_bucket, "") == []
    assert backend.list_keys("") == []
