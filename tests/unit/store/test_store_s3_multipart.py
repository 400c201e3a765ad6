"""The CRC32 multipart protocol pieces: part checksums, the completion body, its answer."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from xml.etree import ElementTree

import pytest

from imagefactory.store.s3_multipart import (
    ChecksumMismatch,
    MultipartUpload,
    SentPart,
    complete_body,
    composite_crc32,
    crc32_b64,
    reported_checksum,
    same_composite,
)

# crc32(b"hello") = 0x3610a686, crc32(b"world") = 0x3a771143 (zlib / S3 CRC32).
HELLO, WORLD = SentPart(1, "e1", 0x3610A686), SentPart(2, "e2", 0x3A771143)
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def test_part_checksum_is_big_endian_base64() -> None:
    """A part's CRC32 is sent as its 4 big-endian bytes in base64."""
    assert crc32_b64(0x3610A686) == "NhCmhg=="


def test_composite_checksum_is_crc_of_part_crcs() -> None:
    """The whole-upload checksum is the CRC32 of the joined part CRCs, then -<parts>."""
    assert composite_crc32([HELLO, WORLD]) == "wpn7tg==-2"


def test_complete_body_lists_each_part_with_its_crc() -> None:
    """CompleteMultipartUpload names every part: CRC32, quoted ETag, number, in order."""
    root = ElementTree.fromstring(complete_body([HELLO, WORLD]))
    assert root.tag == f"{NS}CompleteMultipartUpload"
    parts = [[(child.tag.removeprefix(NS), child.text) for child in p] for p in root]
    assert parts == [
        [("ChecksumCRC32", "NhCmhg=="), ("ETag", '"e1"'), ("PartNumber", "1")],
        [("ChecksumCRC32", "OncRQw=="), ("ETag", '"e2"'), ("PartNumber", "2")],
    ]


def test_reported_checksum_is_read_from_the_result() -> None:
    """The server's ChecksumCRC32 is found in the namespaced result; absent gives None."""
    xml = (
        f'<CompleteMultipartUploadResult xmlns="{NS[1:-1]}"><Key>k</Key>'
        "<ChecksumCRC32>wpn7tg==-2</ChecksumCRC32></CompleteMultipartUploadResult>"
    ).encode()
    assert reported_checksum(xml) == "wpn7tg==-2"
    assert reported_checksum(b"<CompleteMultipartUploadResult/>") is None


def test_server_checksum_compares_with_or_without_part_count() -> None:
    """ "X-2" and "X" match ours; another value or another part count does not."""
    assert same_composite("wpn7tg==-2", "wpn7tg==-2")
    assert same_composite("wpn7tg==", "wpn7tg==-2")
    assert not same_composite("wpn7tg==-3", "wpn7tg==-2")
    assert not same_composite("AAAAAA==", "wpn7tg==-2")


class _Answers:
    """A client whose CompleteMultipartUpload answer is given (error handling only)."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.aborted: list[str] = []
        self.removed: list[str] = []

    def remove_object(self, bucket: str, key: str) -> None:
        self.removed.append(key)

    def _create_multipart_upload(self, *_: Any) -> str:
        return "up-1"

    def _upload_part(self, *args: Any) -> str:
        return f'"etag-{args[5]}"'

    def _execute(self, *_: Any, **__: Any) -> SimpleNamespace:
        return SimpleNamespace(data=self.answer, headers={})

    def _abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        self.aborted.append(upload_id)


class _Source:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, size: int = -1) -> bytes:
        head, self.data = self.data[:size], self.data[size:]
        return head


def _upload(client: _Answers) -> MultipartUpload:
    return MultipartUpload(client, "b", "k", part_size=5, workers=2)  # type: ignore[arg-type]


def test_a_different_server_checksum_fails_the_upload_and_aborts_it() -> None:
    """An object the server assembled from other bytes than we sent is caught and removed."""
    client = _Answers(b"<R><ChecksumCRC32>AAAAAA==-2</ChecksumCRC32></R>")
    with pytest.raises(ChecksumMismatch, match="AAAAAA==-2.*wpn7tg==-2"):
        _upload(client).run(_Source(b"helloworld"), 10)
    assert client.removed == ["k"]


def test_matching_server_checksum_passes() -> None:
    """The same composite checksum from the server completes the upload."""
    client = _Answers(b"<R><ChecksumCRC32>wpn7tg==-2</ChecksumCRC32></R>")
    parts = _upload(client).run(_Source(b"helloworld"), 10)
    assert [(p.number, p.etag, p.crc32) for p in parts] == [
        (1, "etag-1", 0x3610A686),
        (2, "etag-2", 0x3A771143),
    ]
    assert client.aborted == [] and client.removed == []


def test_an_error_body_with_status_200_is_an_error() -> None:
    """S3 can fail a completion late: 200 with an <Error> body raises, and aborts."""
    from minio.error import S3Error

    client = _Answers(b"<Error><Code>InternalError</Code><Message>late</Message></Error>")
    with pytest.raises(S3Error, match="InternalError"):
        _upload(client).run(_Source(b"helloworld"), 10)
    assert client.aborted == ["up-1"]
