"""OpenSSH signatures over manifests (real ssh-keygen, keys made at test time)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from imagefactory.store.signing import (
    SignatureError,
    SignatureMismatch,
    sign_bytes,
    verify_bytes,
)
from tests.prereq import require_tool
from tests.storekit import make_signing_keys


@pytest.fixture
def keygen() -> None:
    require_tool("ssh-keygen")


@pytest.mark.usefixtures("keygen")
def test_sign_and_verify(tmp_path: Path) -> None:
    keys = make_signing_keys(tmp_path / "k")
    sig = sign_bytes(b'{"a":1}\n', keys.private_key)
    assert sig.startswith(b"-----BEGIN SSH SIGNATURE-----")
    assert verify_bytes(b'{"a":1}\n', sig, keys.allowed_signers, "m") == keys.principal
    with pytest.raises(SignatureMismatch, match="does not match"):
        verify_bytes(b'{"a":2}\n', sig, keys.allowed_signers, "m")
    other = make_signing_keys(tmp_path / "o", principal="other@x")
    with pytest.raises(SignatureError, match="unknown signer"):
        verify_bytes(b'{"a":1}\n', sig, other.allowed_signers, "m")
    with pytest.raises(SignatureError, match="unknown signer"):
        verify_bytes(b'{"a":1}\n', b"garbage", keys.allowed_signers, "m")


@pytest.mark.usefixtures("keygen")
def test_missing_key_and_signers_file(tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match="signing key .* does not exist"):
        sign_bytes(b"x", tmp_path / "nokey")
    with pytest.raises(SignatureError, match="allowed_signers file .* does not exist"):
        verify_bytes(b"x", b"y", tmp_path / "none", "m")


@pytest.mark.usefixtures("keygen")
def test_namespace_is_enforced(tmp_path: Path) -> None:
    keys = make_signing_keys(tmp_path / "k")
    # The same key trusted only for another namespace must not verify our manifests.
    text = keys.allowed_signers.read_text().replace('"imagefactory"', '"git"')
    keys.allowed_signers.write_text(text)
    sig = sign_bytes(b"m", keys.private_key)
    with pytest.raises(SignatureError):
        verify_bytes(b"m", sig, keys.allowed_signers, "m")


@pytest.mark.usefixtures("keygen")
def test_passphrase_key_fails_fast_without_prompting(tmp_path: Path) -> None:
    key = tmp_path / "locked"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(key)], check=True
    )
    with pytest.raises(SignatureError, match="without a passphrase, or be in ssh-agent"):
        sign_bytes(b"x", key)
