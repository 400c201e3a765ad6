"""The production store: a MinIO cluster (or any S3-compatible server), through minio-py."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from xml.etree.ElementTree import ParseError

import urllib3
from minio import Minio
from minio.commonconfig import ComposeSource, CopySource
from minio.error import InvalidResponseError, S3Error, ServerError
from urllib3.exceptions import MaxRetryError, ReadTimeoutError

from imagefactory.store.backend import (
    READ_CHUNK,
    HashingReader,
    ObjectMissing,
    Readable,
    Receipt,
    StoreBackend,
    StoreError,
)
from imagefactory.store.s3_multipart import (
    ChecksumMismatch,
    MultipartUpload,
    composite_crc32,
    put_if_absent,
    whole_object_sha256,
)
from imagefactory.store.settings import Credentials, StoreSettings
from imagefactory.store.transfer_meter import Progress

T = TypeVar("T")

_MAX_PARTS = 10_000
# By name, so a browser shows the catalogue's pages (catalogue/) served from the bucket.
_CONTENT_TYPES = {
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
}
_AUTH_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
}


CONNECT_TIMEOUT = 5.0  # an unreachable store fails in seconds
# Writes (part uploads, CompleteMultipartUpload, server-side copies) may keep a busy server
# silent for long on big objects, so they wait this long; reads wait store.read_timeout.
WRITE_TIMEOUT = 120.0
READ_METHODS = frozenset({"GET", "HEAD"})
READ_TRIES = 2  # a read that got no answer is sent once more: a hung server costs 2 timeouts
WRITE_TRIES = 3


class NoAnswer(urllib3.exceptions.HTTPError):
    """Requests sent and no answer within the timeout, on every try."""

    def __init__(self, method: str, seconds: float, tries: int) -> None:
        super().__init__(f"{method}: no answer within {seconds:g} s ({tries} tries)")
        self.read = method in READ_METHODS
        self.seconds = seconds
        self.tries = tries


class _StorePool(urllib3.PoolManager):
    """minio-py's HTTP client: reads (GET, HEAD) wait `read_timeout` for each answer and are
    tried READ_TRIES times, writes wait WRITE_TIMEOUT. Keeps the status and content type of
    the last answer, for the message about a server that is not S3 (minio-py's errors for
    it do not carry them in public attributes)."""

    def __init__(self, workers: int, read_timeout: float) -> None:
        super().__init__(maxsize=max(workers + 2, 10))
        self._timeouts = {
            True: urllib3.Timeout(connect=CONNECT_TIMEOUT, read=read_timeout),
            False: urllib3.Timeout(connect=CONNECT_TIMEOUT, read=WRITE_TIMEOUT),
        }
        self._retries = {
            read: urllib3.Retry(
                total=2,
                connect=2,
                read=tries - 1,
                backoff_factor=0.2,
                status_forcelist=(500, 502, 503, 504),
                allowed_methods=None,  # S3 PUT/part uploads are idempotent
            )
            for read, tries in ((True, READ_TRIES), (False, WRITE_TRIES))
        }
        self.last_answer: tuple[int, str] = (0, "")  # any thread's: for messages only

    def urlopen(  # type: ignore[override]  # as urllib3's own PoolManager.urlopen
        self, method: str, url: str, redirect: bool = True, **kw: Any
    ) -> urllib3.BaseHTTPResponse:
        read = method.upper() in READ_METHODS
        kw.setdefault("timeout", self._timeouts[read])
        kw.setdefault("retries", self._retries[read])
        try:
            response = super().urlopen(method, url, redirect=redirect, **kw)
        except MaxRetryError as exc:
            if isinstance(exc.reason, ReadTimeoutError):
                seconds = float(self._timeouts[read].read_timeout or 0)
                tries = READ_TRIES if read else WRITE_TRIES
                raise NoAnswer(method.upper(), seconds, tries) from None
            raise
        self.last_answer = (response.status, response.headers.get("Content-Type", ""))
        return response


def _not_s3(endpoint: str, answer: tuple[int, str]) -> str:
    status, content_type = answer
    kind = content_type.split(";")[0].strip() or "no content type"
    return (
        f"{endpoint} answers HTTP but not as an S3 server (HTTP {status}, {kind}) (hint: "
        "store.endpoint must be the host:port of the S3 API, e.g. MinIO's API port, not a web "
        "console or another web server)"
    )


def _http_client(workers: int, read_timeout: float) -> _StorePool:
    """Short connect timeout and few retries: an unreachable store fails in seconds; reads of
    a hung server fail after READ_TRIES x `read_timeout`."""
    return _StorePool(workers, read_timeout)


class S3Backend(StoreBackend):
    """Objects in one bucket; big files go up as parallel multipart uploads."""

    def __init__(self, settings: StoreSettings, creds: Credentials) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self._http = _http_client(settings.workers, settings.read_timeout)
        self.client = Minio(
            settings.endpoint,
            access_key=creds.access_key,
            secret_key=creds.secret_key,
            secure=settings.secure,
            region=settings.region,
            http_client=self._http,
        )

    def describe(self) -> str:
        scheme = "https" if self.settings.secure else "http"
        return f"S3 store {scheme}://{self.settings.endpoint}/{self.bucket}"

    @contextmanager
    def _errors(self, action: str, key: str = "") -> Iterator[None]:
        """Turn client exceptions into one clear StoreError naming store, action and reason."""
        what = f"{self.describe()}: {action}{' ' + key if key else ''}"
        try:
            yield
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise ObjectMissing(f"{what}: object does not exist") from None
            if exc.code == "NoSuchBucket":
                raise StoreError(
                    f"{what}: bucket {self.bucket!r} does not exist "
                    "(hint: create it, or fix store.bucket)"
                ) from None
            if exc.code in _AUTH_CODES:
                hint = "check IMAGEFACTORY_S3_* or the credentials file"
                if exc.code == "AccessDenied":  # a known key without this permission
                    hint = (
                        "the key may lack the permission: a hypervisor's read-only key can list "
                        "and pull, publish/promote/prune need the build host's key; else " + hint
                    )
                raise StoreError(
                    f"{what}: credentials rejected ({exc.code}) (hint: {hint})"
                ) from None
            raise StoreError(f"{what}: {exc.code}: {exc.message}") from None
        except ChecksumMismatch as exc:
            raise StoreError(f"{what}: {exc}; the object is not trusted") from None
        except InvalidResponseError:  # an answer that is not S3's XML
            raise StoreError(
                f"{what}: {_not_s3(self.settings.endpoint, self._http.last_answer)}"
            ) from None
        except ServerError as exc:
            raise StoreError(f"{what}: HTTP {exc.status_code} without an S3 error") from None
        except (NoAnswer, ReadTimeoutError) as exc:
            # A bare ReadTimeoutError comes from reading a download's body: a GET, tried once.
            read, seconds, tries = (
                (exc.read, exc.seconds, exc.tries)
                if isinstance(exc, NoAnswer)
                else (True, self.settings.read_timeout, 1)
            )
            hint = (
                "raise store.read_timeout if the server is only slow, else check the server"
                if read
                else "the server may be overloaded: check it"
            )
            raise StoreError(
                f"{what}: no answer within {seconds:g} s"
                f"{f' ({tries} tries)' if tries > 1 else ''} (hint: {hint})"
            ) from None
        except urllib3.exceptions.HTTPError as exc:
            raise StoreError(
                f"{what}: store unreachable ({type(exc).__name__}) "
                "(hint: check store.endpoint and store.secure)"
            ) from None

    def _call(self, action: str, key: str, fn: Callable[[], T]) -> T:
        with self._errors(action, key):
            return fn()
        raise AssertionError("unreachable")  # pragma: no cover - _errors re-raises

    def check(self) -> None:
        """One listing: S3 answers it with XML, a listing or an error (no such bucket,
        credentials rejected). Not bucket_exists: any web server answers its HEAD with a bare
        404, which minio-py takes for a missing bucket, and S3 may answer it unauthenticated."""
        not_s3 = f"{self.describe()}: listing: "
        try:
            self._call(
                "listing",
                "",
                lambda: next(iter(self.client.list_objects(self.bucket, prefix="channels/")), None),
            )
        except (ParseError, ValueError):  # minio-py reading a web page as a listing
            not_s3 += _not_s3(self.settings.endpoint, self._http.last_answer)
            raise StoreError(not_s3) from None
        if "xml" not in self._http.last_answer[1]:
            raise StoreError(not_s3 + _not_s3(self.settings.endpoint, self._http.last_answer))

    def size(self, key: str) -> int | None:
        try:
            stat = self._call("stat", key, lambda: self.client.stat_object(self.bucket, key))
        except ObjectMissing:
            return None
        return int(stat.size or 0)

    def get_bytes(self, key: str) -> bytes:
        def fetch() -> bytes:
            resp = self.client.get_object(self.bucket, key)
            try:
                return bytes(resp.read())
            finally:
                resp.close()
                resp.release_conn()

        return self._call("reading", key, fetch)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._call(
            "writing",
            key,
            lambda: self.client.put_object(
                self.bucket,
                key,
                io.BytesIO(data),
                len(data),
                content_type=_CONTENT_TYPES.get(Path(key).suffix, "text/plain"),
            ),
        )

    def put_new(self, key: str, data: bytes) -> bool:
        return self._call(
            "writing", key, lambda: put_if_absent(self.client, self.bucket, key, data)
        )

    def upload_file(
        self, key: str, path: Path, progress: Progress | None, part_size: int | None = None
    ) -> Receipt:
        size = path.stat().st_size
        # S3 allows at most 10000 parts: grow the part size for very large images.
        part_size = max(part_size or self.settings.part_size, -(-size // _MAX_PARTS))
        upload = MultipartUpload(
            self.client, self.bucket, key, part_size=part_size, workers=self.settings.workers
        )
        with path.open("rb") as fh, HashingReader(fh, progress) as reader:
            # Parts are read here one at a time and sent by `workers` threads, each part with
            # its CRC32 (s3_multipart); HashingReader hashes in its own thread, so reading,
            # hashing and sending overlap. Even a one-part file goes up as a multipart upload,
            # so that every blob has a composite CRC32 to be checked against later.
            parts = self._call("uploading", key, lambda: upload.run(reader, size))
            digest = reader.hexdigest()
        if reader.count != size:
            raise StoreError(f"{path}: changed size while uploading")
        return Receipt(digest, composite_crc32(parts), part_size)

    def upload_stream(self, key: str, source: Readable) -> Receipt:
        # workers=1: one part is sent while the next is read, so memory stays at two parts.
        size = self.settings.part_size
        upload = MultipartUpload(self.client, self.bucket, key, part_size=size, workers=1)
        with HashingReader(source, None) as reader:
            parts = self._call("uploading", key, lambda: upload.run(reader, None))
            return Receipt(reader.hexdigest(), composite_crc32(parts), size)

    def stored_crc32(self, key: str) -> str | None:
        stat = self._call(
            "stat",
            key,
            lambda: self.client.stat_object(
                self.bucket, key, extra_headers={"x-amz-checksum-mode": "ENABLED"}
            ),
        )
        value = stat.metadata.get("x-amz-checksum-crc32") if stat.metadata else None
        return str(value) if value else None

    def stored_sha256(self, key: str) -> str | None:
        return self._call(
            "reading attributes of", key, lambda: whole_object_sha256(self.client, self.bucket, key)
        )

    def copy(self, src: str, dst: str) -> None:
        # copy_object is a server-side copy up to 5 GiB; compose handles larger objects.
        size = self.size(src)
        if size is None:
            raise ObjectMissing(f"{self.describe()}: {src} does not exist")
        source = CopySource(self.bucket, src)
        # Asking for a SHA-256 makes a server that keeps one compute it over the whole copy,
        # which then proves the copy without a download (blob_check).
        sha: dict[str, str | list[str] | tuple[str]] = {"x-amz-checksum-algorithm": "SHA256"}
        if size <= 5 * 1024**3:
            self._call(
                "copying",
                dst,
                lambda: self.client.copy_object(self.bucket, dst, source, metadata=sha),
            )
        else:
            self._call(
                "composing",
                dst,
                lambda: self.client.compose_object(
                    self.bucket, dst, [ComposeSource(self.bucket, src)]
                ),
            )

    def iter_from(self, key: str, offset: int) -> Iterator[bytes]:
        resp = self._call(
            "downloading", key, lambda: self.client.get_object(self.bucket, key, offset=offset)
        )
        try:
            with self._errors("downloading", key):
                yield from resp.stream(READ_CHUNK)
        finally:
            resp.close()
            resp.release_conn()

    def list_keys(self, prefix: str) -> list[str]:
        def listing() -> list[str]:
            objs = self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
            return sorted(str(o.object_name) for o in objs if o.object_name)

        return self._call("listing", prefix, listing)

    def delete(self, key: str) -> None:
        self._call("deleting", key, lambda: self.client.remove_object(self.bucket, key))

    def abandoned_uploads(self, prefix: str) -> list[str]:
        found = self._call(
            "listing uploads", prefix, lambda: incomplete_uploads(self.client, self.bucket, prefix)
        )
        return sorted(name for name, _ in found)

    def discard_abandoned(self, prefix: str) -> int:
        found = self._call(
            "aborting uploads",
            prefix,
            lambda: incomplete_uploads(self.client, self.bucket, prefix, abort=True),
        )
        return len(found)


def incomplete_uploads(
    client: Minio, bucket: str, prefix: str, *, abort: bool = False
) -> list[tuple[str, str]]:
    """(object name, upload id) of unfinished multipart uploads under `prefix`; abort them
    too when `abort` (an upload that vanished meanwhile is not an error).

    The only use of private minio-py methods, kept here on purpose: minio-py (checked up to
    7.2.20) has no public ListMultipartUploads or AbortMultipartUpload (list/remove of
    incomplete uploads were dropped in 7.0), and a presigned DELETE ?uploadId= (public
    get_presigned_url) is rejected by the loopback test server, so it could not be tested.
    tests/unit/store/test_store_s3_private_api.py fails if these signatures or the result
    type change; tests/integration/store/test_store_s3.py runs this against a real server.
    """
    found: list[tuple[str, str]] = []
    key_marker: str | None = None
    while True:
        page = client._list_multipart_uploads(bucket, prefix=prefix, key_marker=key_marker)
        found += [(str(u.object_name), str(u.upload_id)) for u in page.uploads]
        # A truncated page continues after its last key (minio-py drops NextUploadIdMarker,
        # so more uploads of that same key are left for the next publish or prune).
        if not page.is_truncated or page.next_key_marker in (None, key_marker):
            break
        key_marker = page.next_key_marker
    for name, upload_id in found if abort else []:
        try:
            client._abort_multipart_upload(bucket, name, upload_id)
        except S3Error as exc:
            if exc.code != "NoSuchUpload":
                raise
    return found
