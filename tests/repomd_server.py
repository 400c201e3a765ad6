"""A real HTTP server on 127.0.0.1 serving a directory of fake dnf repositories (tests only)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPOMD = """<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>{revision}</revision>
  <data type="primary">
    <checksum type="sha256">{checksum}</checksum>
    <location href="repodata/{checksum}-primary.xml.gz"/>
    <timestamp>{revision}</timestamp>
  </data>
</repomd>
"""


def write_repomd(repo: Path, revision: str, checksum: str = "0" * 64) -> Path:
    """`repo/repodata/repomd.xml` with that revision (and primary checksum)."""
    path = repo / "repodata" / "repomd.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(REPOMD.format(revision=revision, checksum=checksum))
    return path


@dataclass
class Served:
    url: str  # base URL, ending in /
    requests: list[str] = field(default_factory=list)  # paths asked for, in order


REVISION = "1764800000"  # the e2e session's repository state; the nightly moves it on and back


@dataclass(frozen=True)
class RepoState:
    """A served directory whose `debian` repository keys a layer (e2e session)."""

    root: Path  # served directory; the repository is root/debian
    served: Served

    @property
    def url(self) -> str:
        return self.served.url + "debian/"

    def write(self, revision: str, checksum: str = "0" * 64) -> None:
        write_repomd(self.root / "debian", revision, checksum)


@contextlib.contextmanager
def serve(root: Path, port: int = 0) -> Iterator[Served]:
    """Serve `root` over HTTP on 127.0.0.1 while in the block: on `port` if it is free
    (a workspace kept from an earlier run names its URL in layer keys), else on one the
    kernel chooses."""
    served = Served("")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Handler, directory=str(root))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError:
        if not port:
            raise
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    served.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/repo/"
