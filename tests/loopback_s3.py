"""A real S3 server for tests and benchmarks, and moto started on 127.0.0.1 in auth mode.

LoopbackS3 describes any running server the tests use: moto (started here), SeaweedFS or an
external endpoint (tests/s3servers.py). It hands out settings and keys, makes buckets with
names unique to this run, and empties and removes them again at the end.

moto is a development dependency only; it runs in a child process, so importing this
module never needs it. Credentials are enforced: the first few requests are unauthenticated
(used here to create two IAM users, their inline policies and access keys), every later
request must be signed with one of those keys.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minio import Minio
from minio.deleteobjects import DeleteObject

from imagefactory.store.s3_backend import S3Backend
from imagefactory.store.settings import Credentials, StoreKind, StoreSettings
from tests.prereq import missing

_WRITER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}
# Read and list only. moto names HEAD on a bucket s3:HeadBucket (AWS checks s3:ListBucket).
_READER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["s3:Get*", "s3:List*", "s3:HeadBucket"], "Resource": "*"}
    ],
}
# Unsigned requests moto answers: CreateUser, PutUserPolicy, CreateAccessKey, twice.
_BOOTSTRAP_REQUESTS = 6


@dataclass(frozen=True, repr=False)
class LoopbackS3:
    """A running server: its name, where it listens, the keys it accepts, this run's buckets."""

    endpoint: str  # host:port, no scheme (the form minio-py takes)
    access_key: str
    secret_key: str = field(repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, compare=False)
    name: str = "moto"  # "moto", "seaweedfs" or "external"
    secure: bool = False
    readonly: Credentials | None = None  # an identity allowed only to read and list
    hypervisor: Credentials | None = None  # read only what a hypervisor needs (s3servers.py)
    readonly_hint: str = "the server has no read-only identity"
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    buckets: list[str] = field(default_factory=list, compare=False)

    def __repr__(self) -> str:
        # Never the secret: pytest prints fixture values in its reports.
        return f"LoopbackS3(name={self.name!r}, url={self.url!r}, access_key={self.access_key!r})"

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"

    def settings(self, bucket: str, **overrides: Any) -> StoreSettings:
        """StoreSettings for this server (small parts so tests go multipart)."""
        base = StoreSettings(
            kind=StoreKind.S3,
            endpoint=self.endpoint,
            bucket=bucket,
            secure=self.secure,
            part_size=5 * 1024 * 1024,
            workers=3,
        )
        return dataclasses.replace(base, **overrides)

    def credentials(self) -> Credentials:
        return Credentials(self.access_key, self.secret_key)

    def readonly_credentials(self) -> Credentials:
        """The read-and-list identity; a missing one fails in CI and skips elsewhere."""
        if self.readonly is None:
            missing(f"a read-only identity on the {self.name} S3 server", self.readonly_hint)
        return self.readonly

    def client(self) -> Minio:
        return S3Backend(self.settings("unused"), self.credentials()).client

    def new_bucket(self) -> str:
        """Create a bucket named for this run; remove_buckets() deletes it again."""
        name = f"ift-{self.run_id}-{len(self.buckets)}"
        self.buckets.append(name)  # before creating: a half-made bucket is cleaned up too
        self.client().make_bucket(name)
        return name

    def unused_bucket_name(self) -> str:
        """A bucket name that this run never creates (and nobody else will have)."""
        return f"ift-{self.run_id}-absent"

    def remove_bucket(self, name: str) -> None:
        """Empty one bucket (objects, unfinished uploads) and delete it."""
        client = self.client()
        if not client.bucket_exists(name):
            return
        S3Backend(self.settings(name), self.credentials()).discard_abandoned("")
        gone = [
            DeleteObject(o.object_name or "") for o in client.list_objects(name, recursive=True)
        ]
        errors = list(client.remove_objects(name, gone))
        if errors:
            raise RuntimeError(f"{len(errors)} objects not deleted")
        client.remove_bucket(name)

    def remove_buckets(self) -> list[str]:
        """Empty and delete this run's buckets; what failed."""
        failed = []
        for name in self.buckets:
            try:
                self.remove_bucket(name)
            except Exception as exc:  # keep going: remove as much as possible
                failed.append(f"{name}: {type(exc).__name__}: {exc}")
        return failed

    def stop(self, grace: float = 10.0) -> None:
        """Stop a server this run started: SIGTERM, then SIGKILL after `grace` seconds."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (all held until all are chosen)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


# moto's threaded server, run in a child process. (The `moto_server` command's own request
# handling rejected minio-py's signatures on queries containing '/', e.g. list prefixes.)
_LAUNCHER = """
import signal, sys, threading
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
server.stop()
"""


def _server_argv(port: int) -> list[str]:
    return [sys.executable, "-c", _LAUNCHER, str(port)]


def _iam(url: str, params: dict[str, str]) -> str:
    """One unsigned IAM query-API call; moto routes it by the credential scope it names."""
    body = urllib.parse.urlencode({**params, "Version": "2010-05-08"}).encode()
    req = urllib.request.Request(url + "/", data=body, method="POST")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    req.add_header(
        "Authorization",
        "AWS4-HMAC-SHA256 Credential=bootstrap/20200101/us-east-1/iam/aws4_request, "
        "SignedHeaders=host, Signature=0",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.read().decode())


def _iam_user(url: str, user: str, policy: dict[str, Any]) -> Credentials:
    """Create `user` with `policy` inline and return its new access key."""
    _iam(url, {"Action": "CreateUser", "UserName": user})
    _iam(
        url,
        {
            "Action": "PutUserPolicy",
            "UserName": user,
            "PolicyName": "store-test",
            "PolicyDocument": json.dumps(policy),
        },
    )
    reply = _iam(url, {"Action": "CreateAccessKey", "UserName": user})
    access = re.search(r"<AccessKeyId>([^<]+)</AccessKeyId>", reply)
    secret = re.search(r"<SecretAccessKey>([^<]+)</SecretAccessKey>", reply)
    if not access or not secret:
        raise RuntimeError(f"moto server did not return an access key for {user}")
    return Credentials(access.group(1), secret.group(1))


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited early with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"moto server did not listen on 127.0.0.1:{port} in {timeout}s")


def start_loopback_s3(log_path: Path | None = None, timeout: float = 30.0) -> LoopbackS3:
    """Start moto on a free loopback port in auth mode, with a writer and a read-only key."""
    (port,) = free_ports(1)
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_BOOTSTRAP_REQUESTS)}
    log = log_path.open("wb") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(_server_argv(port), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, proc, timeout)
        url = f"http://127.0.0.1:{port}"
        writer = _iam_user(url, "imagefactory", _WRITER_POLICY)
        reader = _iam_user(url, "hypervisor", _READER_POLICY)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return LoopbackS3(
        f"127.0.0.1:{port}", writer.access_key, writer.secret_key, proc, readonly=reader
    )
