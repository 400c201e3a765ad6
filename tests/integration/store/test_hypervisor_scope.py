"""The hypervisor's identity reads images, manifests, reports, channels and revocations, and is
refused the build side of the store (cache/layers/, sha256/): SeaweedFS with prefix-scoped
actions, as docs/store.md declares them."""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from minio import Minio
from minio.error import S3Error

from tests.integration.store.test_store_hypervisor_config import (
    installed,
    invoke,
    publish_one,
    store_only_config,
)
from tests.loopback_s3 import LoopbackS3
from tests.prereq import require_tool
from tests.s3servers import remove_weed_sockets, start_seaweedfs, weed_ports
from tests.storekit import SigningKeys

pytestmark = [pytest.mark.integration, pytest.mark.s3]
BUCKET = "ift-hypervisor-scope"
BUILD_SIDE = ("cache/layers/0123abcd/record.json", "cache/layers/0123abcd/ab.qcow2", "sha256/ab")


@pytest.fixture(scope="module")
def weed() -> Iterator[LoopbackS3]:
    """A SeaweedFS whose hypervisor identity is scoped to BUCKET (the bucket made here)."""
    require_tool("weed")
    ports = weed_ports()
    work = Path(tempfile.mkdtemp(prefix="ift-hv-"))  # short: weed's unix sockets live here
    server = start_seaweedfs(work, ports, hypervisor_bucket=BUCKET)
    try:
        server.client().make_bucket(BUCKET)
        yield server
    finally:
        server.stop(grace=5.0)
        remove_weed_sockets(ports)
        shutil.rmtree(work, ignore_errors=True)


def hypervisor_client(server: LoopbackS3) -> Minio:
    key = server.hypervisor
    assert key is not None
    return Minio(server.endpoint, key.access_key, key.secret_key, secure=False, region="us-east-1")


def test_hypervisor_lists_and_pulls_with_its_scoped_key(
    weed: LoopbackS3, keys: SigningKeys, tmp_path: Path
) -> None:
    """`invoke images` and `invoke pull` work with the hypervisor's key alone."""
    version = publish_one(weed, BUCKET, keys, tmp_path / "sealed")
    config = store_only_config(tmp_path / "etc", keys, weed.endpoint, False, bucket=BUCKET)
    assert weed.hypervisor is not None
    ini = tmp_path / "etc" / "s3.ini"
    ini.write_text(
        f"[s3]\naccess_key = {weed.hypervisor.access_key}\n"
        f"secret_key = {weed.hypervisor.secret_key}\n"
    )
    ini.chmod(0o600)
    env = {"IMAGEFACTORY_S3_CREDENTIALS": str(ini)}
    listing = invoke("images", f"--config={config}", cwd=tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    assert version in listing.stdout
    pulled = invoke("pull", "--family=persistence", f"--config={config}", cwd=tmp_path, env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert installed(tmp_path / "etc" / "images") == [f"persistence-{version}.qcow2"]


@pytest.mark.parametrize("key", BUILD_SIDE)
def test_hypervisor_is_refused_the_build_side(weed: LoopbackS3, key: str) -> None:
    """A layer's record and image, and the dedupe index: GET and HEAD are AccessDenied."""
    weed.client().put_object(BUCKET, key, io.BytesIO(b"layer"), 5)
    reader = hypervisor_client(weed)
    with pytest.raises(S3Error, match="AccessDenied"):
        reader.get_object(BUCKET, key)
    with pytest.raises(S3Error, match="AccessDenied"):
        reader.stat_object(BUCKET, key)


@pytest.mark.parametrize(
    "key", ["images/f/v/manifest.json", "channels/f/stable.json", "revocations/f/v.json"]
)
def test_hypervisor_reads_what_it_uses_and_writes_nothing(weed: LoopbackS3, key: str) -> None:
    weed.client().put_object(BUCKET, key, io.BytesIO(b"data"), 4)
    reader = hypervisor_client(weed)
    assert reader.get_object(BUCKET, key).read() == b"data"
    with pytest.raises(S3Error, match="AccessDenied"):
        reader.put_object(BUCKET, key, io.BytesIO(b"x"), 1)
    with pytest.raises(S3Error, match="AccessDenied"):
        reader.remove_object(BUCKET, key)


def test_the_reader_identity_still_reads_the_layer_cache(weed: LoopbackS3) -> None:
    """The unscoped reader (a CI runner fetching layers) differs: the scope is what refuses."""
    key = BUILD_SIDE[0]
    weed.client().put_object(BUCKET, key, io.BytesIO(b"layer"), 5)
    ro = weed.readonly_credentials()
    reader = Minio(weed.endpoint, ro.access_key, ro.secret_key, secure=False, region="us-east-1")
    assert reader.get_object(BUCKET, key).read() == b"layer"
