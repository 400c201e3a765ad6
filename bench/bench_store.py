#!/usr/bin/env python3
"""Image store benchmark: one run, one file, one S3 server (moto on 127.0.0.1 by default).

Prints: publish throughput vs `aws s3 cp`, pull-with-verify vs a plain download, bytes moved
by a re-publish (target 0), and `sha256sum` throughput as the local limit. Each timing is
the median of --repeat runs (the machine may be shared), with the CPU seconds the client
(this process and its children) and the server used, which are much less noisy than wall
time on a loaded machine. Targets: publish >= 1.0 x `aws s3 cp`; pull with verification
<= 1.1 x plain download time.

Both clients send a CRC32 with every part (awscli by default, publish through
imagefactory.store.s3_multipart), so the server does the same work per byte for both.
Timings that compare two things are taken in turn (A, B, A, B, ...) and the ratio reported
is also the median of the per-pair ratios, so drift in the machine's load hits both sides.

The server: `--server seaweedfs` starts SeaweedFS on 127.0.0.1 (tests/s3servers.py);
`--server moto` starts moto; by default the one IMAGEFACTORY_TEST_S3_ENDPOINT and
IMAGEFACTORY_TEST_S3_CREDENTIALS name, else moto. Its bucket is made for this run and
removed at the end.

    .venv/bin/python bench/bench_store.py --size 2GiB
    .venv/bin/python bench/bench_store.py --size 2GiB --server seaweedfs
    .venv/bin/python bench/bench_store.py --size 64MiB --repeat 1     # quick check
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from imagefactory.store import layout
from imagefactory.store.backend import StoreBackend
from imagefactory.store.publish import publish_image
from imagefactory.store.pull import pull_image
from imagefactory.store.s3_backend import S3Backend
from imagefactory.util.model import parse_size
from tests.s3servers import ServerError, describe_server, open_bench_server
from tests.storekit import make_sealed_image, make_signing_keys

MIB = 1024 * 1024


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds
    client_cpu: float  # this process and its waited-for children (aws, ssh-keygen, sha256sum)
    server_cpu: float  # the server process (nan for a server we did not start, or no /proc)


def _own_cpu() -> float:
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _process_cpu(pid: int | None) -> float:
    if pid is None:
        return math.nan
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    run: Callable[[], object], reset: Callable[[], object], server_pid: int | None
) -> Sample:
    """One timed `run`; `reset` (untimed) runs after it so runs are alike."""
    srv, cpu, start = _process_cpu(server_pid), _own_cpu(), time.perf_counter()
    run()
    sample = Sample(time.perf_counter() - start, _own_cpu() - cpu, _process_cpu(server_pid) - srv)
    reset()
    return sample


def median(samples: list[Sample]) -> Sample:
    return Sample(
        statistics.median(s.wall for s in samples),
        statistics.median(s.client_cpu for s in samples),
        statistics.median(s.server_cpu for s in samples),
    )


def rate(size: int, sample: Sample) -> str:
    return (
        f"{size / MIB / sample.wall:8.1f} MiB/s  ({sample.wall:6.2f} s; cpu client "
        f"{sample.client_cpu:5.2f} s, server {sample.server_cpu:5.2f} s)"
    )


def forget_version(backend: StoreBackend, family: str, version: str, sha: str) -> None:
    """Remove a published version and its dedupe entry, so the next publish uploads again."""
    for key in backend.list_keys(layout.image_prefix(family, version)):
        backend.delete(key)
    backend.delete(layout.index_key(sha))


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--size",
        type=parse_size,
        default="2GiB",
        help="image size, e.g. 2GiB, 256MiB (default 2GiB)",
    )
    ap.add_argument(
        "--part-size", type=parse_size, default="8MiB", help="multipart part size (default 8MiB)"
    )
    ap.add_argument("--workers", type=int, default=4, help="parallel part uploads (default 4)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per timing; median (default 3)")
    ap.add_argument(
        "--aws-download",
        action="store_true",
        help="also time `aws s3 cp` downloading the image (very slow against moto)",
    )
    ap.add_argument("--workdir", type=Path, default=None, help="scratch dir (default: temp)")
    ap.add_argument(
        "--server",
        choices=("env", "moto", "seaweedfs"),
        default="env",
        help="S3 server: env = the one IMAGEFACTORY_TEST_S3_ENDPOINT names, else moto "
        "(default); moto or seaweedfs = start one on 127.0.0.1",
    )
    args = ap.parse_args()
    if not args.size or not args.part_size or args.repeat < 1:
        ap.error("sizes look like 2GiB, 512MiB or a number of bytes; --repeat >= 1")
    work = Path(tempfile.mkdtemp(prefix="bench-store-", dir=args.workdir))
    try:
        with ExitStack() as stack:
            return run_bench(args, stack, work)
    except ServerError as exc:
        print(f"bench_store: S3 server: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_bench(args: argparse.Namespace, stack: ExitStack, work: Path) -> int:
    """Every timing, on the server --server names; prints the report."""
    size, part, rep = args.size, args.part_size, args.repeat
    aws = shutil.which("aws") or str(Path(sys.executable).parent / "aws")
    server = open_bench_server(args.server, work, stack)
    keys = make_signing_keys(work / "keys")
    print(f"making a {size / MIB:.0f} MiB image in {work} ...", flush=True)
    sealed = make_sealed_image(work / "sealed", size=size, seed=-1)
    image = sealed / "persistence.qcow2"
    bucket = server.new_bucket()
    settings = server.settings(bucket, part_size=part, workers=args.workers)
    backend = S3Backend(settings, server.credentials())
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
    }

    def aws_cp(src: str, dst: str, **extra_env: str) -> None:
        subprocess.run(
            [aws, "--endpoint-url", server.url, "s3", "cp", "--only-show-errors", src, dst],
            env={**env, **extra_env},
            check=True,
        )

    def nothing() -> None:
        pass

    pid = server.process.pid if server.process else None

    def timed(run: Callable[[], object], reset: Callable[[], object]) -> Sample:
        return median([measure(run, reset, pid) for _ in range(rep)])

    t_sum = timed(
        lambda: subprocess.run(["sha256sum", str(image)], check=True, capture_output=True),
        nothing,
    )

    def hash_in_python() -> None:  # what publish and pull use: OpenSSL via hashlib
        digest = hashlib.sha256()
        with image.open("rb") as fh:
            while chunk := fh.read(8 * MIB):
                digest.update(chunk)

    t_hashlib = timed(hash_in_python, nothing)
    first = publish_image(backend, sealed, keys.private_key, show_progress=False)
    forget_version(backend, "persistence", first.version, first.sha256)
    # Paired runs (aws, ours, in turn) so load drift hits both.
    aws_s, pub_s = [], []
    for _ in range(rep):
        aws_s.append(
            measure(
                lambda: aws_cp(str(image), f"s3://{bucket}/awscli.qcow2"),
                lambda: backend.delete("awscli.qcow2"),
                pid,
            )
        )
        pub_s.append(
            measure(
                lambda: publish_image(backend, sealed, keys.private_key, show_progress=False),
                lambda: forget_version(backend, "persistence", first.version, first.sha256),
                pid,
            )
        )
    t_aws_up, t_pub = median(aws_s), median(pub_s)
    paired = statistics.median(a.wall / p.wall for a, p in zip(aws_s, pub_s, strict=True))
    publish_image(backend, sealed, keys.private_key, channel="stable", show_progress=False)
    start = time.perf_counter()
    again = publish_image(backend, sealed, keys.private_key, show_progress=False)
    t_again = time.perf_counter() - start

    blob = layout.blob_key("persistence", first.version)
    plain = work / "plain.qcow2"
    hv = work / "hv"

    def fget() -> None:
        backend.client.fget_object(bucket, blob, str(plain))

    def fget_fsync() -> None:
        fget()
        with plain.open("rb") as fh:
            os.fsync(fh.fileno())

    def pull() -> None:
        pull_image(
            backend,
            "persistence",
            hv,
            keys.allowed_signers,
            channel="stable",
            show_progress=False,
        )

    def forget_plain() -> None:
        plain.unlink()
        os.sync()  # the next run starts with no dirty pages of this one

    def forget_pull() -> None:
        shutil.rmtree(hv)
        os.sync()

    # In turn (plain, pull, plain + fsync) so load drift hits all three alike.
    plain_s, pull_s, sync_s = [], [], []
    for _ in range(rep):
        plain_s.append(measure(fget, forget_plain, pid))
        pull_s.append(measure(pull, forget_pull, pid))
        sync_s.append(measure(fget_fsync, forget_plain, pid))
    t_plain, t_pull, t_plain_sync = median(plain_s), median(pull_s), median(sync_s)
    pull_paired = statistics.median(p.wall / d.wall for p, d in zip(pull_s, plain_s, strict=True))
    pull_paired_sync = statistics.median(
        p.wall / d.wall for p, d in zip(pull_s, sync_s, strict=True)
    )
    t_aws_down = None
    if args.aws_download:  # moto answers awscli's ranged GETs very slowly: off by default
        t_aws_down = measure(
            lambda: aws_cp(f"s3://{bucket}/{blob}", str(plain)), lambda: plain.unlink(), pid
        )

    print(
        f"\nimage {size / MIB:.0f} MiB, part size {part // MIB} MiB, {args.workers} "
        f"workers, median of {rep}, server: {describe_server(server)}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    print(f"sha256sum (local limit)         {rate(size, t_sum)}")
    print(f"hashlib sha256 (ours, OpenSSL)  {rate(size, t_hashlib)}")
    print(f"aws s3 cp upload                {rate(size, t_aws_up)}")
    print(f"publish (hash+upload+sign)      {rate(size, t_pub)}")
    print(
        f"re-publish bytes moved          {again.bytes_uploaded} ({again.deduplicated}, "
        f"{t_again:.2f} s) (target 0)"
    )
    print(f"plain download (minio-py)       {rate(size, t_plain)}")
    print(f"pull (verify+hash+fsync+link)   {rate(size, t_pull)}")
    print(f"plain download + fsync          {rate(size, t_plain_sync)}")
    if t_aws_down:
        print(f"aws s3 cp download (1 run)      {rate(size, t_aws_down)}")
    print(
        f"\npublish throughput / aws s3 cp upload throughput: {t_aws_up.wall / t_pub.wall:.2f} "
        f"(median of paired runs {paired:.2f}) (target >= 1.0)"
    )
    print(
        f"pull-with-verify time / plain download time     : {t_pull.wall / t_plain.wall:.2f} "
        f"(median of paired runs {pull_paired:.2f}) (target <= 1.1)"
    )
    print(
        f"pull-with-verify time / plain download + fsync  : "
        f"{t_pull.wall / t_plain_sync.wall:.2f} (median of paired runs {pull_paired_sync:.2f})"
    )
    if t_aws_down:
        print(
            f"pull-with-verify time / aws s3 cp download time : {t_pull.wall / t_aws_down.wall:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
