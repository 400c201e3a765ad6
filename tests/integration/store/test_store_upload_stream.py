"""upload_stream on both backends: a stream of unknown length, in short reads as a pipe gives
them, stored whole and atomically; a source that fails leaves nothing."""

from __future__ import annotations

import hashlib
import random

import pytest

from imagefactory.store.backend import StoreBackend

pytestmark = pytest.mark.integration
MIB = 1024 * 1024


class ShortReads:
    """Hands out `data` at most 64 KiB per read (a pipe's way); fails at `fail_at` if set."""

    def __init__(self, data: bytes, fail_at: int | None = None) -> None:
        self.data, self.pos, self.fail_at = data, 0, fail_at

    def read(self, size: int = -1) -> bytes:
        if self.fail_at is not None and self.pos >= self.fail_at:
            raise OSError("the member's stream broke")
        chunk = self.data[self.pos : self.pos + min(size, 64 * 1024)]
        self.pos += len(chunk)
        return chunk


def test_stream_stored_whole(backend: StoreBackend) -> None:
    """11 MiB in 64 KiB reads (three S3 parts of 5 MiB): the same bytes and sha256 come back."""
    data = random.Random(7).randbytes(11 * MIB + 123)
    receipt = backend.upload_stream("backups/g/n/p/backup.xbstream", ShortReads(data))
    assert receipt.sha256 == hashlib.sha256(data).hexdigest()
    assert backend.get_bytes("backups/g/n/p/backup.xbstream") == data


def test_empty_stream(backend: StoreBackend) -> None:
    """An empty stream is an empty object."""
    backend.upload_stream("backups/g/n/p/empty", ShortReads(b""))
    assert backend.size("backups/g/n/p/empty") == 0


def test_broken_stream_leaves_nothing(backend: StoreBackend) -> None:
    """A source failing after 6 MiB: no object, and no unfinished upload left behind."""
    data = random.Random(8).randbytes(8 * MIB)
    with pytest.raises(OSError, match="stream broke"):
        backend.upload_stream("backups/g/n/p/broken", ShortReads(data, fail_at=6 * MIB))
    assert backend.size("backups/g/n/p/broken") is None
    assert backend.abandoned_uploads("backups/") == []
