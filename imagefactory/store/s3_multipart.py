"""Parallel multipart upload with a CRC32 checksum on every part (S3 "flexible checksums").

minio-py's put_object sends parts without a checksum algorithm. The server then has nothing
to check a part against but the request signature, and an S3 server that keeps a checksum
per object must compute one over the whole object when the upload completes (the loopback
test server does exactly that, a serial pass over every byte at the end). Declaring CRC32 at
CreateMultipartUpload and sending each part's CRC32 lets the server check every part as it
arrives and combine the part checksums at the end (a "composite" checksum), as AWS S3 and
MinIO do; the same protocol `aws s3 cp` uses by default.

minio-py (checked up to 7.2.20) has no public way to add per-part headers or part checksums
to CompleteMultipartUpload, so this module uses its private request methods, and only this
module: tests/unit/store/test_store_s3_private_api.py fails if they change.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol
from xml.etree import ElementTree

from minio import Minio
from minio.error import S3Error

_S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


class PartSource(Protocol):
    def read(self, size: int = -1) -> bytes: ...


@dataclass(frozen=True)
class SentPart:
    number: int
    etag: str
    crc32: int


class ChecksumMismatch(Exception):
    """The server reports a different whole-upload checksum than the parts we sent."""


def crc32_b64(crc: int) -> str:
    """A CRC32 as S3 writes it: the 4 big-endian bytes, base64."""
    return base64.b64encode(crc.to_bytes(4, "big")).decode()


def composite_crc32(parts: list[SentPart]) -> str:
    """The checksum S3 reports for a CRC32 multipart upload: CRC32 of the part CRCs, -N."""
    joined = b"".join(p.crc32.to_bytes(4, "big") for p in parts)
    return f"{crc32_b64(zlib.crc32(joined))}-{len(parts)}"


def same_composite(reported: str, ours: str) -> bool:
    """Servers differ in whether they append "-<parts>" to the value; compare what is there."""
    value, _, count = reported.partition("-")
    our_value, _, our_count = ours.partition("-")
    return value == our_value and count in ("", our_count)


def complete_body(parts: list[SentPart]) -> bytes:
    """CompleteMultipartUpload XML with each part's ETag and CRC32 (in the schema's order)."""
    root = ElementTree.Element("CompleteMultipartUpload", xmlns=_S3_NS)
    for part in parts:
        tag = ElementTree.SubElement(root, "Part")
        ElementTree.SubElement(tag, "ChecksumCRC32").text = crc32_b64(part.crc32)
        ElementTree.SubElement(tag, "ETag").text = f'"{part.etag}"'
        ElementTree.SubElement(tag, "PartNumber").text = str(part.number)
    return bytes(ElementTree.tostring(root, encoding="utf-8", xml_declaration=False))


def reported_checksum(response_xml: bytes) -> str | None:
    """ChecksumCRC32 from a CompleteMultipartUploadResult (None: the server sent none)."""
    if not response_xml.strip():
        return None
    root = ElementTree.fromstring(response_xml)
    for elem in root.iter():
        if elem.tag.rsplit("}", 1)[-1] == "ChecksumCRC32" and elem.text:
            return elem.text.strip()
    return None


def _is_error(response_xml: bytes) -> bool:
    # S3 may answer CompleteMultipartUpload with 200 and an <Error> body (it fails late).
    if not response_xml.strip():
        return False
    return ElementTree.fromstring(response_xml).tag.endswith("Error")


class MultipartUpload:
    """One upload of `size` bytes from `source` in `part_size` parts, `workers` at a time."""

    def __init__(self, client: Minio, bucket: str, key: str, *, part_size: int, workers: int):
        self.client, self.bucket, self.key = client, bucket, key
        self.part_size = part_size
        self.workers = max(1, workers)

    def _send(self, number: int, data: bytes, upload_id: str) -> SentPart:
        crc = zlib.crc32(data)  # releases the GIL: runs beside the other parts' sends
        etag = self.client._upload_part(
            self.bucket,
            self.key,
            data,
            {"x-amz-checksum-crc32": crc32_b64(crc)},
            upload_id,
            number,
        )
        return SentPart(number, str(etag).strip('"'), crc)

    def _complete(self, upload_id: str, parts: list[SentPart]) -> None:
        body = complete_body(parts)
        headers: dict[str, str | list[str] | tuple[str]] = {
            "Content-Type": "application/xml",
            "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode(),
        }
        response = self.client._execute(
            "POST",
            self.bucket,
            self.key,
            body=body,
            headers=headers,
            query_params={"uploadId": upload_id},
        )
        if _is_error(response.data):
            raise S3Error.fromxml(response)
        reported, expected = reported_checksum(response.data), composite_crc32(parts)
        if reported is not None and not same_composite(reported, expected):
            # The object exists now but holds other bytes: remove it before saying so.
            self.client.remove_object(self.bucket, self.key)
            raise ChecksumMismatch(
                f"server reports CRC32 {reported} for the uploaded object, the parts sent "
                f"add up to {expected}"
            )

    def run(self, source: PartSource, size: int | None) -> list[SentPart]:
        """Read parts in this thread, send them from a pool; abort the upload on any error.
        size None: a stream of unknown length, read until it ends."""
        upload_id = str(
            self.client._create_multipart_upload(
                self.bucket,
                self.key,
                {"Content-Type": "application/octet-stream", "x-amz-checksum-algorithm": "CRC32"},
            )
        )
        sent: list[SentPart] = []
        pending: deque[Future[SentPart]] = deque()
        try:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="s3-part") as pool:
                try:
                    remaining, number = (-1 if size is None else size), 0
                    while remaining != 0:
                        # At most `workers` parts in flight plus one being read: memory stays
                        # near (workers + 1) x part size whatever the image size.
                        if len(pending) >= self.workers:
                            sent.append(pending.popleft().result())
                        want = self.part_size if size is None else min(self.part_size, remaining)
                        data = _read_full(source, want)
                        if not data and size is None and number > 0:
                            break
                        if not data and size is not None:
                            raise OSError(f"source ended {remaining} bytes early")
                        number += 1
                        remaining -= 0 if size is None else len(data)
                        pending.append(pool.submit(self._send, number, data, upload_id))
                    while pending:
                        sent.append(pending.popleft().result())
                finally:
                    for future in pending:
                        future.cancel()
            self._complete(upload_id, sent)
        except BaseException:
            self._abort(upload_id)
            raise
        return sent

    def _abort(self, upload_id: str) -> None:
        """Best effort: an upload left behind is found and removed by the next publish."""
        with contextlib.suppress(Exception):  # the original error is the one to report
            self.client._abort_multipart_upload(self.bucket, self.key, upload_id)


def _read_full(source: PartSource, want: int) -> bytes:
    """Up to `want` bytes: a pipe's read() returns what has arrived, and S3 parts but the
    last must be at least 5 MiB, so a stream's part is filled before it is sent."""
    data = source.read(want)
    if len(data) in (0, want):
        return data
    pieces = [data]
    got = len(data)
    while got < want and (more := source.read(want - got)):
        pieces.append(more)
        got += len(more)
    return b"".join(pieces)


def put_if_absent(client: Minio, bucket: str, key: str, data: bytes) -> bool:
    """PUT `data` only if `key` does not exist (If-None-Match: *, honoured by AWS, MinIO,
    SeaweedFS and moto); False when it exists. minio-py's put_object cannot send the header,
    so this uses the same private request method as the completion above."""
    headers: dict[str, str | list[str] | tuple[str]] = {
        "If-None-Match": "*",
        "Content-Type": "application/json",
        "Content-MD5": base64.b64encode(hashlib.md5(data).digest()).decode(),
    }
    try:
        client._execute("PUT", bucket, key, body=data, headers=headers)
    except S3Error as exc:
        if exc.code in ("PreconditionFailed", "ConditionalRequestConflict"):
            return False
        raise
    return True


_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def whole_object_sha256(client: Minio, bucket: str, key: str) -> str | None:
    """The SHA-256 (hex) the server keeps of the whole object, from GetObjectAttributes, or
    None. Only a value the answer shows to be of the whole object counts: no parts listed,
    no `-N` composite suffix, and a checksum type, where given, of FULL_OBJECT. A server that
    does not answer the request (or keeps no SHA-256) gives None."""
    headers: dict[str, str | list[str] | tuple[str]] = {
        "x-amz-object-attributes": "Checksum,ObjectParts"
    }
    try:
        response = client._execute(
            "GET", bucket, key, headers=headers, query_params={"attributes": ""}
        )
        root = ElementTree.fromstring(response.data)
    except (S3Error, ElementTree.ParseError):
        return None
    if root.find(f".//{_NS}ObjectParts") is not None or root.find(".//ObjectParts") is not None:
        return None
    value = _text(root, "ChecksumSHA256")
    kind = _text(root, "ChecksumType")
    if not value or "-" in value or kind not in (None, "FULL_OBJECT"):
        return None
    try:
        return base64.b64decode(value, validate=True).hex()
    except ValueError:
        return None


def _text(root: ElementTree.Element, tag: str) -> str | None:
    found = root.find(f".//{_NS}{tag}")
    if found is None:
        found = root.find(f".//{tag}")
    return found.text if found is not None and found.text else None
