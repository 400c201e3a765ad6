"""Fixtures: a real S3 server on 127.0.0.1 (moto, auth mode), keys, and both backends."""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagefactory.store.backend import StoreBackend
from imagefactory.store.fs_backend import FsBackend
from imagefactory.store.s3_backend import S3Backend
from tests.loopback_s3 import LoopbackS3, start_loopback_s3
from tests.prereq import missing, require_tool
from tests.storekit import SigningKeys, make_signing_keys

_bucket_numbers = itertools.count()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackS3]:
    if importlib.util.find_spec("moto") is None:
        missing("Python package moto[server]", "pip install -e '.[dev]'")
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    server = start_loopback_s3(log_path=log)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> SigningKeys:
    require_tool("ssh-keygen")
    return make_signing_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def new_bucket(s3_server: LoopbackS3) -> str:
    """A fresh bucket per test, so tests never see each other's objects."""
    name = f"store-test-{next(_bucket_numbers)}"
    S3Backend(s3_server.settings(name), s3_server.credentials()).client.make_bucket(name)
    return name


@pytest.fixture(params=["fs", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> StoreBackend:
    """The contract: every test using this runs against the directory store and S3."""
    if request.param == "fs":
        return FsBackend(tmp_path / "store")
    server: LoopbackS3 = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("new_bucket")
    return S3Backend(server.settings(bucket), server.credentials())
