"""Fixtures: a real S3 server with auth (moto on 127.0.0.1, or the one IMAGEFACTORY_TEST_S3_*
names: tests/s3servers.py), keys, and both backends. Tests that reach S3 are marked `s3`."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagefactory.store.backend import StoreBackend
from imagefactory.store.fs_backend import FsBackend
from imagefactory.store.s3_backend import S3Backend
from tests.loopback_s3 import LoopbackS3
from tests.prereq import missing, require_tool
from tests.s3servers import ENV_ENDPOINT, ServerError, close_server, open_server
from tests.storekit import SigningKeys, make_signing_keys


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that talks to the S3 server `s3` (CI runs those on a second server)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_s3 = callspec is not None and callspec.params.get("backend") == "s3"
        if on_s3 or "s3_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.s3)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackS3]:
    """The session's S3 server; every bucket made through it is removed at the end."""
    if not os.environ.get(ENV_ENDPOINT) and importlib.util.find_spec("moto") is None:
        missing("Python package moto[server]", "pip install -e '.[dev]'")
    try:
        server = open_server(tmp_path_factory.mktemp("s3-server"))
    except ServerError as exc:
        pytest.fail(f"S3 server for the tests: {exc}", pytrace=False)
    yield server
    try:
        close_server(server)
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> SigningKeys:
    require_tool("ssh-keygen")
    return make_signing_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def new_bucket(s3_server: LoopbackS3) -> Iterator[str]:
    """A fresh bucket per test, so tests never see each other's objects; removed after it
    (SeaweedFS gives each bucket its own volumes, and runs out of them after ~50 buckets)."""
    name = s3_server.new_bucket()
    yield name
    s3_server.remove_bucket(name)


@pytest.fixture(params=["fs", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> StoreBackend:
    """The contract: every test using this runs against the directory store and S3."""
    if request.param == "fs":
        return FsBackend(tmp_path / "store")
    server: LoopbackS3 = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("new_bucket")
    return S3Backend(server.settings(bucket), server.credentials())
