#!/usr/bin/env python3
"""Remote layer cache benchmark: a fresh build host with a warm store, in one run.

Host A builds two families (the real engine, cache and store; layer builders replaced by
qemu-img/qemu-io writes of --layer-size each, as in tests/enginekit.py, so no VM boots) and
pushes every layer. Then, --repeat times, in turn:
  * a fresh host (empty artifacts dir, the team's build credential) builds both families
    from the store: it fetches what it needs (each family's sealed image) and builds nothing;
  * a plain download (minio-py fget_object) of the same objects.
Prints the medians and the ratio (target <= 1.2 x the plain download), and the requests a
host with a warm local cache makes to the store (target: one listing).

    .venv/bin/python bench/bench_remote_cache.py --server seaweedfs
    .venv/bin/python bench/bench_remote_cache.py --layer-size 64MiB --repeat 1   # quick
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack, redirect_stdout
from io import StringIO
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pytest

from imagefactory.config import load_config
from imagefactory.engine.build import build_family
from imagefactory.engine.context import Artifacts
from imagefactory.engine.remote import RemoteCache
from imagefactory.store import layer_cache
from imagefactory.store.s3_backend import S3Backend
from imagefactory.util.model import parse_size
from tests.enginekit import make_project
from tests.s3servers import describe_server, open_bench_server
from tests.storekit import RecordingStore, make_signing_keys

FAMILIES = ("fa", "fb")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--layer-size", default="128MiB", help="data written by each layer")
    ap.add_argument("--repeat", type=int, default=3, help="runs per timing; median")
    ap.add_argument("--server", choices=("env", "moto", "seaweedfs"), default="seaweedfs")
    args = ap.parse_args()
    layer_size = parse_size(args.layer_size)
    with ExitStack() as stack, pytest.MonkeyPatch.context() as mp:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-remote-")))
        server = open_bench_server(args.server, work, stack)
        bucket = f"bench-remote-{int(time.time())}"
        backend = S3Backend(server.settings(bucket), server.credentials())
        backend.client.make_bucket(bucket)
        keys = make_signing_keys(work / "keys")
        project = make_project(work / "project", mp, layer_size)
        cfg = load_config(project / "f.yaml")

        def remote(store: Any) -> RemoteCache:
            listing = layer_cache.listing(store)
            return RemoteCache(store, keys.private_key, keys.allowed_signers, listing)

        host_a = Artifacts(work / "host-a")
        with redirect_stdout(StringIO()):
            for family in FAMILIES:
                build_family(cfg, family, host_a, remote(backend))
        objects = []
        for family in FAMILIES:
            seal = host_a.cache.ref(family, "seal")
            record = layer_cache.read_record(backend, str(seal), keys.allowed_signers)
            assert record is not None
            objects.append(layer_cache.blob_key(record.key, record.sha256))
        total = sum(backend.size(o) or 0 for o in objects)

        def fresh_host(n: int) -> float:
            art = Artifacts(work / f"fresh-{n}")
            shutil.copytree(host_a.credentials, art.credentials)
            start = time.monotonic()
            with redirect_stdout(StringIO()):
                for family in FAMILIES:
                    res = build_family(cfg, family, art, remote(backend))
                    assert res.built == (), res.built
            seconds = time.monotonic() - start
            shutil.rmtree(art.root)
            return seconds

        def plain(n: int) -> float:
            start = time.monotonic()
            for i, key in enumerate(objects):
                backend.client.fget_object(bucket, key, str(work / f"plain-{n}-{i}"))
            seconds = time.monotonic() - start
            for i in range(len(objects)):
                (work / f"plain-{n}-{i}").unlink()
            return seconds

        fetch_times, plain_times, ratios = [], [], []
        for n in range(args.repeat):
            fetch_times.append(fresh_host(n))
            plain_times.append(plain(n))
            ratios.append(fetch_times[-1] / plain_times[-1])
        warm = RecordingStore(backend)
        with redirect_stdout(StringIO()):
            shared = remote(warm)  # one cache for both builds, as `invoke build --family=fa,fb`
            for family in FAMILIES:
                build_family(cfg, family, host_a, shared)

        mib = total / 1024 / 1024
        f, p = statistics.median(fetch_times), statistics.median(plain_times)
        print(f"server: {describe_server(server)}; layers of {args.layer_size}, ", end="")
        print(f"both families' sealed images: {mib:.0f} MiB, median of {args.repeat}")
        print(f"fresh host builds fa+fb from the store   {f:6.2f} s  ({mib / f:7.1f} MiB/s)")
        print(f"plain download of the same objects       {p:6.2f} s  ({mib / p:7.1f} MiB/s)")
        print(
            f"fresh-host build / plain download: {f / p:.2f} "
            f"(median of paired runs {statistics.median(ratios):.2f}) (target <= 1.2)"
        )
        print(f"warm host, requests to the store for both builds: {warm.calls}")
        for key in backend.list_keys(""):
            backend.delete(key)
        backend.client.remove_bucket(bucket)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
