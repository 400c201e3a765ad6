"""What the store says when something outside it goes wrong: a damaged partial download, an
endpoint that is not S3, a server that stops answering (and writes that are slow on purpose)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from imagefactory.store import api
from imagefactory.store.backend import StoreBackend, StoreError
from imagefactory.store.publish import publish_image
from imagefactory.store.pull import pull_image
from imagefactory.store.s3_backend import S3Backend
from imagefactory.store.settings import (
    ENV_ACCESS,
    ENV_SECRET,
    Credentials,
    StoreKind,
    StoreSettings,
)
from tests.integration.store.http_stubs import FaultyProxy, html_server, silent_server
from tests.loopback_s3 import LoopbackS3
from tests.storekit import SigningKeys, make_sealed_image

pytestmark = pytest.mark.integration
MIB = 1024 * 1024
TRIES = 2  # a read that gets no answer is sent twice (docs/store.md, store.read_timeout)


def _installed(hv: Path) -> list[str]:
    return sorted(p.name for p in hv.glob("*.qcow2"))


def test_damaged_partial_download_is_blamed_and_the_rerun_starts_clean(
    backend: StoreBackend, keys: SigningKeys, tmp_path: Path
) -> None:
    """A resume from a damaged .part names the resumed bytes, not the store; a re-run works."""
    sealed = make_sealed_image(tmp_path / "s", size=6 * MIB, seed=31)
    res = publish_image(backend, sealed, keys.private_key, show_progress=False)
    data = (sealed / "persistence.qcow2").read_bytes()
    hv = tmp_path / "hv"
    hv.mkdir()
    part = hv / f".persistence-{res.version}.qcow2.part"
    damaged = bytearray(data[: 2 * MIB])
    damaged[MIB] ^= 0xFF  # e.g. a disk error under the earlier, interrupted pull
    part.write_bytes(damaged)
    with pytest.raises(StoreError) as err:
        pull_image(backend, "persistence", hv, keys.allowed_signers, show_progress=False)
    message = str(err.value)
    assert "store copy is corrupt" not in message
    assert f"the first {2 * MIB} bytes were resumed from {part}" in message
    assert "removed: a re-run downloads the image from the start" in message
    assert not part.exists() and _installed(hv) == []
    again = pull_image(backend, "persistence", hv, keys.allowed_signers, show_progress=False)
    assert (again.resumed_from, again.bytes_downloaded) == (0, len(data))
    assert again.path.read_bytes() == data


@pytest.mark.parametrize("status", [404, 200])
def test_web_server_that_is_not_s3_is_named_as_such(status: int) -> None:
    """A web server at store.endpoint is reported as not S3, not as a missing bucket."""
    with html_server(status) as endpoint:
        settings = StoreSettings(kind=StoreKind.S3, endpoint=endpoint, secure=False)
        backend = S3Backend(settings, Credentials("AKIAEXAMPLE", "not-a-secret"))
        with pytest.raises(StoreError) as err:
            backend.check()
    message = str(err.value)
    assert f"{endpoint} answers HTTP but not as an S3 server (HTTP {status}, text/html" in message
    assert "store.endpoint" in message and "does not exist" not in message


@dataclasses.dataclass(frozen=True)
class Published:
    settings: StoreSettings  # the bucket, signing keys and an empty image_dir
    data: bytes  # the image
    part: Path  # where a pull of it keeps its partial download


@pytest.fixture
def published(
    s3_server: LoopbackS3,
    new_bucket: str,
    keys: SigningKeys,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Published:
    """A bucket holding one image on its `stable` channel; credentials in the environment."""
    monkeypatch.setenv(ENV_ACCESS, s3_server.access_key)
    monkeypatch.setenv(ENV_SECRET, s3_server.secret_key)
    hv = tmp_path / "hv"
    hv.mkdir()
    settings = s3_server.settings(
        new_bucket, signing_key=keys.private_key, allowed_signers=keys.allowed_signers, image_dir=hv
    )
    sealed = make_sealed_image(tmp_path / "s", size=8 * MIB, seed=32)
    res = api.publish(settings, sealed, channel="stable", show_progress=False)
    data = (sealed / "persistence.qcow2").read_bytes()
    return Published(settings, data, hv / f".persistence-{res.version}.qcow2.part")


def _failing_pull(settings: StoreSettings) -> tuple[str, float]:
    """The message of a pull that fails, and how long it took to fail."""
    start = time.monotonic()
    with pytest.raises(StoreError) as err:
        api.pull(settings, "persistence", channel="stable", show_progress=False)
    return str(err.value), time.monotonic() - start


def test_server_that_never_answers_fails_within_the_read_timeout(published: Published) -> None:
    """A hung server: pull fails after TRIES x store.read_timeout, naming the setting; the
    .part file of an earlier pull is kept for the next one."""
    published.part.write_bytes(published.data[:MIB])
    with silent_server() as endpoint:
        hung = dataclasses.replace(published.settings, endpoint=endpoint, read_timeout=1.0)
        message, elapsed = _failing_pull(hung)
    assert TRIES * 1.0 <= elapsed < TRIES * 1.0 + 3, elapsed
    assert endpoint in message and f"no answer within 1 s ({TRIES} tries)" in message
    assert "raise store.read_timeout" in message
    assert published.part.read_bytes() == published.data[:MIB]
    got = api.pull(published.settings, "persistence", channel="stable", show_progress=False)
    assert got.resumed_from == MIB and got.path.read_bytes() == published.data


def test_server_that_stops_in_the_middle_of_the_image_fails_and_resumes_later(
    s3_server: LoopbackS3, published: Published
) -> None:
    """A server that goes silent mid-download: pull fails within store.read_timeout, the
    bytes received stay in the .part file, and the next pull resumes from them."""
    proxy = FaultyProxy(s3_server.endpoint, stall_path=".qcow2", stall_after=3 * MIB).start()
    try:
        via = dataclasses.replace(published.settings, endpoint=proxy.endpoint, read_timeout=1.0)
        message, elapsed = _failing_pull(via)
    finally:
        proxy.close()
    assert proxy.stalled.is_set()
    assert elapsed < 1.0 + 5, elapsed  # the stall itself is not retried: one read timeout
    assert "downloading" in message and "no answer within 1 s" in message, message
    assert "store.read_timeout" in message
    kept = published.part.read_bytes()
    assert 0 < len(kept) <= 3 * MIB and kept == published.data[: len(kept)]
    got = api.pull(published.settings, "persistence", channel="stable", show_progress=False)
    assert got.resumed_from == len(kept) and got.path.read_bytes() == published.data


def test_slow_upload_answers_do_not_hit_the_read_timeout(
    s3_server: LoopbackS3, published: Published, tmp_path: Path
) -> None:
    """Completing a multipart upload may take the server long: writes wait longer than
    store.read_timeout, so publish works against a server that answers them late."""
    proxy = FaultyProxy(
        s3_server.endpoint, late_methods=("PUT", "POST"), late_path="uploadId", late_s=2.5
    ).start()
    try:
        via = dataclasses.replace(published.settings, endpoint=proxy.endpoint, read_timeout=1.0)
        sealed = make_sealed_image(tmp_path / "s2", size=MIB, seed=33)
        res = api.publish(via, sealed, channel="nightly", show_progress=False)
    finally:
        proxy.close()
    assert proxy.delayed >= 2  # the part and the completion were answered late
    assert res.bytes_uploaded == MIB and res.channel == "nightly"
