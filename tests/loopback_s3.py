"""A real S3 HTTP server on 127.0.0.1 for tests and benchmarks (moto in auth mode).

moto is a development dependency only; it runs in a child process, so importing this
module never needs it. Credentials are enforced: the first few
requests are unauthenticated (used here to create one IAM user with an s3:* policy and its
access key), every later request must be signed with that key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagefactory.store.settings import Credentials, StoreKind, StoreSettings

# Requests answered without credentials: CreateUser, PutUserPolicy, CreateAccessKey.
_BOOTSTRAP_REQUESTS = 3
_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


@dataclass(frozen=True)
class LoopbackS3:
    """A running server: where it listens and the key that it accepts."""

    endpoint: str  # host:port, no scheme (the form minio-py takes)
    access_key: str
    secret_key: str
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def settings(self, bucket: str, **overrides: Any) -> StoreSettings:
        """StoreSettings for this server (plain http, small parts so tests go multipart)."""
        base = StoreSettings(
            kind=StoreKind.S3,
            endpoint=self.endpoint,
            bucket=bucket,
            secure=False,
            part_size=5 * 1024 * 1024,
            workers=3,
        )
        return dataclasses.replace(base, **overrides)

    def credentials(self) -> Credentials:
        return Credentials(self.access_key, self.secret_key)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    """Start moto on a free loopback port in auth mode; return it with a working key."""
    port = _free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_BOOTSTRAP_REQUESTS)}
    log = log_path.open("wb") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(_server_argv(port), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, proc, timeout)
        url = f"http://127.0.0.1:{port}"
        _iam(url, {"Action": "CreateUser", "UserName": "imagefactory"})
        _iam(
            url,
            {
                "Action": "PutUserPolicy",
                "UserName": "imagefactory",
                "PolicyName": "s3-all",
                "PolicyDocument": json.dumps(_POLICY),
            },
        )
        reply = _iam(url, {"Action": "CreateAccessKey", "UserName": "imagefactory"})
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    access = re.search(r"<AccessKeyId>([^<]+)</AccessKeyId>", reply)
    secret = re.search(r"<SecretAccessKey>([^<]+)</SecretAccessKey>", reply)
    if not access or not secret:
        proc.kill()
        proc.wait()
        raise RuntimeError("moto server did not return an access key")
    return LoopbackS3(f"127.0.0.1:{port}", access.group(1), secret.group(1), proc)
