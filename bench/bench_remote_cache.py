#!/usr/bin/env python3
"""Remote layer cache benchmark: a fresh build host with a warm store, in one run.

Host A builds two families (the real engine, cache and store; layer builders replaced by
qemu-img/qemu-io writes of --layer-size each, as in tests/enginekit.py, so no VM boots) and
pushes every layer. Then, --repeat rounds, each in a rotated order:
  * a fresh host (empty artifacts dir, the team's build credential) builds both families
    from the store: it fetches what it needs (each family's sealed image) and builds nothing;
  * a plain download (minio-py fget_object) of the same objects;
  * where the time goes: our fetch of those objects (receive, write, sha256 in a second
    thread), receive + write without a hash, the transfer alone, sha256 alone.
Prints medians and best runs, the ratio (target <= 1.2 x the plain download), the floor if
hashing could not overlap, and the requests a host with a warm local cache makes to the
store (target: one listing).

    .venv/bin/python bench/bench_remote_cache.py --server seaweedfs
    .venv/bin/python bench/bench_remote_cache.py --layer-size 64MiB --repeat 1   # quick
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack, redirect_stderr, redirect_stdout
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


def busy_seconds() -> float:
    """CPU seconds the whole machine (client, server, kernel) has been busy, all cores."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def settle() -> None:
    """Start each timed run with no writeback pending from the one before (outside the
    timing): otherwise whichever run follows a large write pays for it."""
    os.sync()
    time.sleep(0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--layer-size", default="128MiB", help="data written by each layer")
    ap.add_argument("--repeat", type=int, default=3, help="runs per timing; median")
    ap.add_argument("--server", choices=("env", "moto", "seaweedfs"), default="seaweedfs")
    ap.add_argument(
        "--workdir",
        default=None,
        help="where the hosts and the server keep their files (default: the temp dir; "
        "/dev/shm takes the disk out of the comparison)",
    )
    args = ap.parse_args()
    layer_size = parse_size(args.layer_size)
    with ExitStack() as stack, pytest.MonkeyPatch.context() as mp:
        work = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(prefix="bench-remote-", dir=args.workdir)
            )
        )
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
                build_family(cfg, cfg.family(family), host_a, remote(backend))
        objects = []
        for family in FAMILIES:
            seal = host_a.cache.ref(family, "seal")
            record = layer_cache.read_record(backend, str(seal), keys.allowed_signers)
            assert record is not None
            objects.append(layer_cache.blob_key(record.key, record.sha256))
        total = sum(backend.size(o) or 0 for o in objects)

        records = [
            layer_cache.read_record(backend, str(host_a.cache.ref(f, "seal")), keys.allowed_signers)
            for f in FAMILIES
        ]
        layers = [r for r in records if r is not None]

        def fresh_host(n: int) -> None:
            art = Artifacts(work / f"fresh-{n}")
            shutil.copytree(host_a.credentials, art.credentials)
            with redirect_stdout(StringIO()), redirect_stderr(StringIO()):
                for family in FAMILIES:
                    res = build_family(cfg, cfg.family(family), art, remote(backend))
                    assert res.built == (), res.built

        def plain(n: int) -> None:
            for i, key in enumerate(objects):
                backend.client.fget_object(bucket, key, str(work / f"plain-{n}-{i}"))

        def fetch_image(n: int) -> None:  # receive + write + sha256 in a second thread
            for i, layer in enumerate(layers):
                dest = work / f"fetch-{n}-{i}"
                layer_cache.fetch_image(backend, layer, dest, show_progress=False)

        def receive_write(n: int) -> None:  # the same requests, written, not hashed
            for i, key in enumerate(objects):
                with (work / f"recv-{n}-{i}").open("wb") as out:
                    for chunk in backend.iter_from(key, 0):
                        out.write(chunk)

        def receive_only(n: int) -> None:  # the transfer alone
            for key in objects:
                for _ in backend.iter_from(key, 0):
                    pass

        def hash_only(n: int) -> None:  # sha256 of the same bytes, from memory, one core
            digest = hashlib.sha256()
            for chunk in payload:
                digest.update(chunk)

        payload = [backend.get_bytes(key) for key in objects]
        measures = [fresh_host, plain, fetch_image, receive_write, receive_only, hash_only]
        times: dict[str, list[float]] = {m.__name__: [] for m in measures}
        cpu: dict[str, list[float]] = {m.__name__: [] for m in measures}
        for n in range(args.repeat):
            # Rotate the order each round: on this machine a run right after another large
            # transfer is often 2-3 x slower (whatever runs in that slot), so a fixed order
            # would charge that to one measure.
            for measure in measures[n % len(measures) :] + measures[: n % len(measures)]:
                settle()
                start, busy = time.monotonic(), busy_seconds()
                measure(n)
                times[measure.__name__].append(time.monotonic() - start)
                cpu[measure.__name__].append(busy_seconds() - busy)
                for leftover in [*work.glob("fresh-*"), *work.glob("[pfr]*-[0-9]*-[0-9]*")]:
                    shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        warm = RecordingStore(backend)
        with redirect_stdout(StringIO()):
            shared = remote(warm)  # one cache for both builds, as `invoke build --family=fa,fb`
            for family in FAMILIES:
                build_family(cfg, cfg.family(family), host_a, shared)

        mib = total / 1024 / 1024
        med = {k: statistics.median(v) for k, v in times.items()}
        low = {k: min(v) for k, v in times.items()}
        print(f"server: {describe_server(server)}; layers of {args.layer_size}, ", end="")
        print(f"both families' sealed images: {mib:.0f} MiB; {args.repeat} rounds, order rotated")
        print(f"files in {work}, {os.cpu_count()} cores")
        used = {k: statistics.median(v) for k, v in cpu.items()}
        cores = os.cpu_count() or 1
        print(f"{'':44} {'median':>8} {'best':>8}  {'rate':>15}  CPU s (all processes)")
        for name, label in (
            ("fresh_host", "fresh host builds fa+fb from the store"),
            ("plain", "plain download (minio fget_object)"),
            ("fetch_image", "  of which: fetch (receive+write+sha256)"),
            ("receive_write", "  receive + write, no hash"),
            ("receive_only", "  receive only (the transfer)"),
            ("hash_only", "  sha256 alone, one core, from memory"),
        ):
            rate = f"({mib / med[name]:7.1f} MiB/s)"
            print(f"{label:<44} {med[name]:7.2f}s {low[name]:7.2f}s  {rate}  {used[name]:5.2f}")
        overhead = med["fresh_host"] - med["fetch_image"]
        print(f"build around the fetches (plan, records, commit): {overhead:.2f} s")
        print(
            f"fresh-host build / plain download: {med['fresh_host'] / med['plain']:.2f} median,"
            f" {low['fresh_host'] / low['plain']:.2f} best (target <= 1.2)"
        )
        floor = (med["receive_write"] + med["hash_only"]) / med["plain"]
        print(
            "floor if hashing could not overlap at all (receive+write, then sha256): "
            f"{floor:.2f} x plain"
        )
        cpu_floor = used["fresh_host"] / cores / med["plain"]
        print(
            f"CPU floor: the fresh host's {used['fresh_host']:.2f} CPU s on {cores} cores, even if "
            f"perfectly parallel, take {cpu_floor:.2f} x the plain download's wall time"
        )
        print(f"warm host, requests to the store for both builds: {warm.calls}")
        for key in backend.list_keys(""):
            backend.delete(key)
        backend.client.remove_bucket(bucket)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
