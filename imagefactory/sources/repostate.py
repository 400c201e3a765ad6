"""The state of a package repository, read from its `repodata/repomd.xml` at plan time.

A layer with `epoch_from: {repomd: [URL, ...]}` gets each repository's revision and the
sha256 of its repomd.xml as an input: the layer (and everything above it) is rebuilt when a
repository publishes new metadata, and reused while none did. Reading is one small GET per
URL on the build host; nothing is written. A failure is an error naming the URL and the
config field, never a silent fallback to an older state.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from imagefactory.errors import FactoryError

FETCH_TIMEOUT_S = 20.0
MAX_REPOMD_BYTES = 4 * 1024 * 1024  # real ones are a few KiB
REPOMD_PATH = "repodata/repomd.xml"


class RepoStateError(FactoryError):
    """A repository's metadata could not be read or understood."""


@dataclass(frozen=True)
class RepoState:
    url: str  # the repository base URL, as configured
    revision: str | None  # repomd's <revision> (usually a Unix time); optional in the format
    sha256: str  # of repomd.xml: changes whenever any metadata file changes

    def to_input(self) -> dict[str, str | None]:
        return {"url": self.url, "revision": self.revision, "sha256": self.sha256}


def repomd_url(base_url: str) -> str:
    """Where a repository keeps its repomd.xml: `<base>/repodata/repomd.xml`."""
    return base_url.rstrip("/") + "/" + REPOMD_PATH


def parse_revision(data: bytes) -> str | None:
    """The text of repomd's top-level <revision>, in any namespace; None if there is none.

    Raises ValueError if `data` is not a repomd document.
    """
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ValueError(f"not valid XML ({exc})") from None
    if root.tag.rsplit("}", 1)[-1] != "repomd":
        raise ValueError(f"root element is <{root.tag}>, not <repomd>")
    for child in root:
        if child.tag.rsplit("}", 1)[-1] == "revision":
            text = (child.text or "").strip()
            return text or None
    return None


def fetch(base_url: str, where: str, timeout: float = FETCH_TIMEOUT_S) -> RepoState:
    """Read one repository's state; `where` names the config field for the error message."""
    url = repomd_url(base_url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            data = resp.read(MAX_REPOMD_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise _error(where, url, f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _error(where, url, str(exc.reason)) from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise _error(where, url, str(exc) or type(exc).__name__) from None
    if len(data) > MAX_REPOMD_BYTES:
        raise _error(where, url, f"larger than {MAX_REPOMD_BYTES} bytes; not a repomd.xml")
    try:
        revision = parse_revision(data)
    except ValueError as exc:
        raise _error(where, url, str(exc)) from None
    return RepoState(base_url, revision, hashlib.sha256(data).hexdigest())


def _error(where: str, url: str, reason: str) -> RepoStateError:
    return RepoStateError(
        f"{where}: cannot read the repository state from {url}: {reason}. The layer's key "
        "depends on it, so there is no fallback: make the repository reachable from this host "
        "or point the field at a reachable mirror (the stand-in families need no repository: "
        "invoke plan --config=standin.yaml --family=standin-alpha)"
    )


class RepoStates:
    """Repository states for one plan: each URL is read at most once, so every layer and
    family planned together sees the same state."""

    def __init__(self, timeout: float = FETCH_TIMEOUT_S) -> None:
        self.timeout = timeout
        self._seen: dict[str, RepoState] = {}

    def of(self, base_url: str, where: str) -> RepoState:
        if base_url not in self._seen:
            self._seen[base_url] = fetch(base_url, where, self.timeout)
        return self._seen[base_url]
