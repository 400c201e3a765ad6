"""The test S3 server helpers: no secret in repr, the environment read with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.store.settings import Credentials
from tests.loopback_s3 import LoopbackS3
from tests.s3servers import (
    ENV_CREDENTIALS,
    ENV_ENDPOINT,
    ServerError,
    credentials_ini,
    external_from_env,
)

SECRET = "wJalrXUtnFEMI-not-to-be-printed"
RO_SECRET = "readonly-secret-not-to-be-printed"


def _ini(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s3.ini"
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_server_repr_leaves_out_the_secrets() -> None:
    """repr() and str() of a server (pytest prints them) name it but hold no secret."""
    plain = LoopbackS3("127.0.0.1:9", "AKIAEXAMPLE", SECRET, None)
    text = f"{plain!r} {plain}"
    assert "127.0.0.1:9" in text and "AKIAEXAMPLE" in text and SECRET not in text
    reader = Credentials("RO", RO_SECRET)
    text = repr(LoopbackS3("127.0.0.1:9", "AKIAEXAMPLE", SECRET, None, readonly=reader))
    assert SECRET not in text and RO_SECRET not in text


def test_credentials_ini_round_trips_both_identities(tmp_path: Path) -> None:
    """The launcher's INI file holds [s3] and [s3-readonly] as the suite reads them back."""
    server = LoopbackS3("127.0.0.1:9", "AK", SECRET, readonly=Credentials("RO", RO_SECRET))
    text = credentials_ini(server)
    assert "[s3]" in text and "[s3-readonly]" in text and SECRET in text
    env = {ENV_ENDPOINT: "localhost:1", ENV_CREDENTIALS: str(_ini(tmp_path, text))}
    # Parsing succeeds up to the first request, which finds nothing listening on port 1.
    with pytest.raises(ServerError, match="localhost:1: no S3 server answers"):
        external_from_env(env)


@pytest.mark.parametrize("endpoint", ["localhost", "ftp://h:1", "http://h:1/path", "https://"])
def test_a_bad_endpoint_is_named(endpoint: str, tmp_path: Path) -> None:
    """An endpoint that is not host:port is refused, naming the variable and the value."""
    env = {ENV_ENDPOINT: endpoint, ENV_CREDENTIALS: str(_ini(tmp_path, "[s3]\n"))}
    with pytest.raises(ServerError, match=f"{ENV_ENDPOINT}: .* is not host:port"):
        external_from_env(env)


def test_an_endpoint_without_credentials_is_refused() -> None:
    """The credentials variable is required with the endpoint."""
    with pytest.raises(ServerError, match=f"{ENV_CREDENTIALS}: not set"):
        external_from_env({ENV_ENDPOINT: "127.0.0.1:9000"})


def test_credentials_file_problems_name_file_and_field(tmp_path: Path) -> None:
    """A key missing in [s3] or [s3-readonly] is reported with the file, never the secret."""
    path = _ini(tmp_path, "[s3]\naccess_key = AK\n")
    env = {ENV_ENDPOINT: "127.0.0.1:9000", ENV_CREDENTIALS: str(path)}
    with pytest.raises(ServerError, match=r"s3\.secret_key"):
        external_from_env(env)
    _ini(tmp_path, f"[s3]\naccess_key = AK\nsecret_key = {SECRET}\n[s3-readonly]\naccess_key=R\n")
    with pytest.raises(ServerError, match=r"\[s3-readonly\] lacks secret_key") as err:
        external_from_env(env)
    assert SECRET not in str(err.value) and str(path) in str(err.value)


def test_no_endpoint_means_the_default_server() -> None:
    """Without the variable the suite starts its own moto (None: nothing external)."""
    assert external_from_env({ENV_CREDENTIALS: "/nonexistent"}) is None


def test_readonly_credentials_missing_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server without a read-only identity says how to give it one (skip here, fail in CI)."""
    monkeypatch.delenv("CI", raising=False)
    server = LoopbackS3("127.0.0.1:9", "AK", SECRET, readonly_hint="add [s3-readonly]")
    with pytest.raises(pytest.skip.Exception, match=r"read-only identity.*add \[s3-readonly\]"):
        server.readonly_credentials()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="read-only identity"):
        server.readonly_credentials()
