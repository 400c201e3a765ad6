"""Signatures over manifests and channel pointers with OpenSSH (`ssh-keygen -Y`): no key
server, only keys the hosts already have."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from imagefactory.errors import FactoryError, MissingToolError
from imagefactory.store.layout import SIGNATURE_NAMESPACE
from imagefactory.util.tools import child_env


class SignatureError(FactoryError):
    """A signature is missing, from an unknown key, or does not match."""


class SignatureMismatch(SignatureError):
    """A signature from a trusted key, but over other content than the one it came with."""


def _ssh_keygen() -> str:
    exe = shutil.which("ssh-keygen")
    if exe is None:
        raise MissingToolError("ssh-keygen", "the openssh-client package")
    return exe


def sign_bytes(data: bytes, key: Path) -> bytes:
    """Sign `data` with an OpenSSH private key; return the armored signature."""
    if not key.is_file():
        raise SignatureError(
            f"signing key {key} does not exist "
            "(hint: set store.signing_key to the build host's private key)"
        )
    proc = subprocess.run(
        [_ssh_keygen(), "-Y", "sign", "-q", "-f", str(key), "-n", SIGNATURE_NAMESPACE],
        input=data,
        capture_output=True,
        check=False,
        timeout=60,
        start_new_session=True,  # no controlling tty: never stop at a passphrase prompt
        env=child_env(),
    )
    if proc.returncode != 0 or b"BEGIN SSH SIGNATURE" not in proc.stdout:
        tail = proc.stderr.decode(errors="replace").strip()
        raise SignatureError(
            f"signing with {key} failed: {tail or 'no signature produced'} "
            "(hint: the key must be usable without a passphrase, or be in "
            "ssh-agent)"
        )
    return proc.stdout


def verify_bytes(data: bytes, signature: bytes, allowed_signers: Path, what: str) -> str:
    """Check `signature` over `data`; return the signer's principal or raise SignatureError."""
    if not allowed_signers.is_file():
        raise SignatureError(
            f"allowed_signers file {allowed_signers} does not exist "
            "(hint: set store.allowed_signers; see docs/store.md)"
        )
    exe = _ssh_keygen()
    with tempfile.TemporaryDirectory(prefix="imagefactory-sig-") as tmp:
        sig_path = Path(tmp) / "content.sig"
        sig_path.write_bytes(signature)
        found = subprocess.run(
            [exe, "-Y", "find-principals", "-s", str(sig_path), "-f", str(allowed_signers)],
            capture_output=True,
            check=False,
            timeout=60,
            env=child_env(),
        )
        principals = found.stdout.decode(errors="replace").split()
        if found.returncode != 0 or not principals:
            raise SignatureError(
                f"{what}: signed by a key that is not in {allowed_signers} (unknown signer)"
            )
        checked = subprocess.run(
            [
                exe,
                "-Y",
                "verify",
                "-f",
                str(allowed_signers),
                "-I",
                principals[0],
                "-n",
                SIGNATURE_NAMESPACE,
                "-s",
                str(sig_path),
            ],
            input=data,
            capture_output=True,
            check=False,
            timeout=60,
            env=child_env(),
        )
    if checked.returncode != 0:
        raise SignatureMismatch(
            f"{what}: signature does not match its content (changed after signing, or the "
            "signature of something else)"
        )
    return principals[0]
