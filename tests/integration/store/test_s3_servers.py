"""The S3 servers the store tests run on: read-only identity, bucket clean-up, the launcher."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from minio import Minio
from minio.error import S3Error

from tests.loopback_s3 import LoopbackS3
from tests.prereq import require_tool
from tests.s3servers import (
    put_claiming_sha256,
    rejects_bad_payload_hash,
    require_payload_hash_check,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


def _client(server: LoopbackS3, access: str, secret: str) -> Minio:
    return Minio(server.endpoint, access, secret, secure=server.secure, region="us-east-1")


def test_readonly_identity_reads_and_lists_only(s3_server: LoopbackS3, new_bucket: str) -> None:
    """The read-only key gets and lists objects; writing and deleting are refused."""
    writer = s3_server.client()
    writer.put_object(new_bucket, "images/a", io.BytesIO(b"abc"), 3)
    ro = s3_server.readonly_credentials()
    reader = _client(s3_server, ro.access_key, ro.secret_key)
    assert reader.bucket_exists(new_bucket)
    assert reader.get_object(new_bucket, "images/a").read() == b"abc"
    assert [o.object_name for o in reader.list_objects(new_bucket, recursive=True)] == ["images/a"]
    with pytest.raises(S3Error, match="AccessDenied"):
        reader.put_object(new_bucket, "images/b", io.BytesIO(b"x"), 1)
    with pytest.raises(S3Error, match="AccessDenied"):
        reader.remove_object(new_bucket, "images/a")
    assert [o.object_name for o in writer.list_objects(new_bucket, recursive=True)] == ["images/a"]


def test_remove_buckets_empties_and_deletes_them(s3_server: LoopbackS3) -> None:
    """Buckets made through a server object go at the end: objects, uploads and all."""
    own = dataclasses.replace(s3_server, process=None, run_id=s3_server.run_id + "c", buckets=[])
    name = own.new_bucket()
    client = own.client()
    client.put_object(name, "a/b", io.BytesIO(b"x"), 1)
    client.put_object(name, "c", io.BytesIO(b"y"), 1)
    aws = require_tool("aws")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": own.access_key,
        "AWS_SECRET_ACCESS_KEY": own.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    subprocess.run(
        [aws, "--endpoint-url", own.url, "s3api", "create-multipart-upload",
         "--bucket", name, "--key", "unfinished"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    assert own.remove_buckets() == []
    assert not client.bucket_exists(name)


def test_payload_hash_check_is_probed_with_a_real_request(
    s3_server: LoopbackS3, new_bucket: str
) -> None:
    """A body with its true sha256 is stored; whether a false one is refused is recorded
    (neither moto nor SeaweedFS refuses it: tests that need that skip, naming why)."""
    body = b"checked payload"
    true_hash = hashlib.sha256(body).hexdigest()
    assert put_claiming_sha256(s3_server, new_bucket, "true", body, true_hash) == 200
    assert s3_server.client().get_object(new_bucket, "true").read() == body
    checks = rejects_bad_payload_hash(s3_server, new_bucket)
    assert [o.object_name for o in s3_server.client().list_objects(new_bucket)] == ["true"]
    if s3_server.name in ("moto", "seaweedfs"):
        assert checks is False
        with pytest.raises(pytest.skip.Exception, match="x-amz-content-sha256.*stores it"):
            require_payload_hash_check(s3_server, new_bucket)


def test_launcher_runs_a_command_against_seaweedfs(tmp_path: Path) -> None:
    """`python -m tests.s3servers seaweedfs -- CMD`: CMD reaches the server with the exported
    key (a private file), its exit code is returned, and the server is gone afterwards."""
    require_tool("weed")
    probe = tmp_path / "probe.py"
    probe.write_text(
        textwrap.dedent(
            """
            import os, stat, sys
            from tests.s3servers import external_from_env
            ini = os.environ["IMAGEFACTORY_TEST_S3_CREDENTIALS"]
            server = external_from_env()
            server.client().list_buckets()
            ro = server.readonly_credentials()
            print(server.name, server.endpoint, stat.S_IMODE(os.stat(ini).st_mode), ini)
            sys.exit(7)
            """
        )
    )
    run = subprocess.run(
        [sys.executable, "-m", "tests.s3servers", "seaweedfs", "--", sys.executable, str(probe)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 7, run.stderr
    name, endpoint, mode, ini = run.stdout.split()
    assert name == "seaweedfs" and mode == str(stat.S_IRUSR | stat.S_IWUSR)
    assert not Path(ini).exists()
    host, port = endpoint.split(":")
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=2).close()
