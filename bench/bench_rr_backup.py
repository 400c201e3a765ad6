#!/usr/bin/env python3
"""Round-robin backup streaming benchmark: `mariabackup --backup --stream=xbstream` of a local
stand-alone mariadbd (--rows rows of ~1 KiB written first) piped to /dev/null, against the
same backup streamed into the store by fleet.backups.take_backup (the S3 server the
environment names, else a moto on 127.0.0.1; --store fs for the directory store). Prints
medians of --repeat runs each way, alternating, and the ratio (target >= 0.8).

    .venv/bin/python bench/bench_rr_backup.py --rows 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from imagefactory.fleet.backups import BackupTarget, take_backup
from imagefactory.fleet.mariadb_local import LocalServer
from imagefactory.store.api import StoreBackend
from imagefactory.store.fs_backend import FsBackend
from imagefactory.store.s3_backend import S3Backend
from tests.rrkit import LocalDbMember
from tests.s3servers import close_server, open_server
from tests.storekit import make_signing_keys


def fill(server: LocalServer, rows: int) -> None:
    server.sql(
        "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY AUTO_INCREMENT, "
        "v VARBINARY(1024)) ENGINE=InnoDB"
    )
    batch = 2000
    for start in range(0, rows, batch):
        values = ",".join("(RANDOM_BYTES(1000))" for _ in range(min(batch, rows - start)))
        server.sql(f"INSERT INTO app.t (v) VALUES {values}")


def to_null(member: LocalDbMember) -> tuple[float, int]:
    stream = member.open_backup()
    began, size = time.monotonic(), 0
    while chunk := stream.read(1024 * 1024):
        size += len(chunk)
    elapsed = time.monotonic() - began
    status, _ = stream.finish()
    assert status == 0
    return elapsed, size


def stream_only(member: LocalDbMember, backend: StoreBackend, n: int) -> float:
    """The stream into the store alone (upload_stream), as take_backup does it."""
    stream = member.open_backup()
    began = time.monotonic()
    backend.upload_stream(f"bench/stream-{n}", stream)
    elapsed = time.monotonic() - began
    status, _ = stream.finish()
    assert status == 0
    return elapsed


def to_store(member: LocalDbMember, target: BackupTarget, n: int) -> tuple[float, int]:
    began = time.monotonic()
    manifest = take_backup(target, member, "bench", f"run-{n}")
    return time.monotonic() - began, manifest.size


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--store", choices=("s3", "fs"), default="s3")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rr-") as tmp:
        root = Path(tmp)
        server = LocalServer(root / "db", root / "db" / "data", "127.0.0.77", 3306)
        server.initialise()
        server.start()
        s3 = None
        try:
            fill(server, args.rows)
            member = LocalDbMember("bench-01", server)
            keys = make_signing_keys(root / "keys")
            backend: StoreBackend
            if args.store == "fs":
                backend = FsBackend(root / "store")
            else:
                (root / "s3").mkdir()
                s3 = open_server(root / "s3")
                backend = S3Backend(s3.settings(s3.new_bucket()), s3.credentials())
            target = BackupTarget(backend, keys.private_key, keys.allowed_signers)
            null_times, stream_times, store_times, size = [], [], [], 0
            for n in range(args.repeat):
                t, size = to_null(member)
                null_times.append(t)
                stream_times.append(stream_only(member, backend, n))
                t, _ = to_store(member, target, n)
                store_times.append(t)
        finally:
            server.stop()
            if s3 is not None:
                close_server(s3)
    mib = size / 2**20
    null_s, store_s = statistics.median(null_times), statistics.median(store_times)
    stream_s = statistics.median(stream_times)
    print(f"backup {mib:.0f} MiB, {args.repeat} runs each, store {args.store}")
    print(f"  mariabackup --stream > /dev/null: {null_s:.2f} s ({mib / null_s:.0f} MiB/s)")
    print(f"  upload_stream into the store:     {stream_s:.2f} s ({mib / stream_s:.0f} MiB/s)")
    print(f"  take_backup (+ checksums, sign):  {store_s:.2f} s ({mib / store_s:.0f} MiB/s)")
    print(f"  ratio, stream (target >= 0.8): {null_s / stream_s:.2f}")
    print(f"  ratio, whole backup:           {null_s / store_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
