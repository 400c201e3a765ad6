"""The build credential: an SSH key pair the factory generates for its own build user.

It never enters the repository or a published image: the root layer authorizes its public
half, every layer logs in with it, and the seal layer deletes the user and the credential.
Its fingerprint is an input of the root layer, so rotating the credential rebuilds the chain.
("Key" in this package means a layer key; this is an SSH key pair, called a credential.)
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from imagefactory.errors import FactoryError
from imagefactory.util.tools import run


@dataclass(frozen=True)
class BuildCredential:
    private: Path
    public_line: str

    @property
    def blob(self) -> bytes:
        """The raw public key blob (what an authorized_keys line encodes in base64)."""
        return base64.b64decode(self.public_line.split()[1])

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.blob).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class MissingCredential(BuildCredential):
    """Stands in for a build credential that does not exist yet, so that a read-only plan can
    key the root layer before the first build generates the real one. Its fingerprint can
    match no real credential's, so no cached layer is ever taken for one keyed with it."""

    @property
    def fingerprint(self) -> str:
        return "none yet"


def load_build_credential(directory: Path) -> BuildCredential | None:
    """The build credential if this host has one; None before the first build. Read-only."""
    private = directory / "build_ed25519"
    if not private.is_file():
        return None
    public = private.with_name(private.name + ".pub")
    try:
        return BuildCredential(private, public.read_text().strip())
    except OSError as exc:
        raise FactoryError(
            f"cannot read the build credential's public half {public}: {exc.strerror}"
            f" (hint: delete {private} and its .pub; the next build generates a new pair)"
        ) from None


def ensure_build_credential(
    directory: Path, comment: str = "imagefactory-build"
) -> BuildCredential:
    """Load the build credential, generating it (ed25519, mode 0600) the first time."""
    credential = load_build_credential(directory)
    if credential is not None:
        return credential
    private = directory / "build_ed25519"
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    tmp = directory / ".build_ed25519.tmp"
    for stale in (tmp, tmp.with_name(tmp.name + ".pub")):
        stale.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(tmp)])
    tmp.with_name(tmp.name + ".pub").rename(private.with_name(private.name + ".pub"))
    tmp.rename(private)
    public = private.with_name(private.name + ".pub").read_text().strip()
    return BuildCredential(private, public)


def generate_credential(path: Path, comment: str) -> BuildCredential:
    """A fresh throwaway credential (e.g. the verifier's login)."""
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return BuildCredential(path, path.with_name(path.name + ".pub").read_text().strip())
