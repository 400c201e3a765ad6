"""The pull's download pipe: bytes in order, hashed, written; errors reach the caller."""

from __future__ import annotations

import errno
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagefactory.store import download_pipe
from imagefactory.store.download_pipe import pipe_to_file
from imagefactory.store.transfer_meter import Progress


def _chunks(count: int, size: int = 1000) -> Iterator[bytes]:
    for n in range(count):
        yield bytes([n % 256]) * size


def _bar() -> Progress:
    return Progress("test", 0, enabled=False)


def test_every_chunk_is_written_in_order_and_hashed(tmp_path: Path) -> None:
    """The file holds the chunks in order and the digest covers exactly them."""
    expected = b"".join(_chunks(300))
    digest = hashlib.sha256()
    with (tmp_path / "f").open("ab") as out:
        got = pipe_to_file(_chunks(300), out, digest, _bar(), limit=len(expected))
    assert got == len(expected)
    assert (tmp_path / "f").read_bytes() == expected
    assert digest.hexdigest() == hashlib.sha256(expected).hexdigest()


def test_appending_after_a_resume_with_early_writeback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writeback ranges start at the resumed end of the file; the content stays exact."""
    monkeypatch.setattr(download_pipe, "WRITEBACK_STEP", 4096)
    path = tmp_path / "f"
    path.write_bytes(b"head" * 1000)
    with path.open("ab") as out:
        pipe_to_file(_chunks(100), out, hashlib.sha256(), _bar(), limit=100_000)
    assert path.read_bytes() == b"head" * 1000 + b"".join(_chunks(100))


class _FullDisk(io.BytesIO):
    def write(self, data: object) -> int:
        if self.tell() > 5000:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)  # type: ignore[arg-type]


def test_a_write_error_stops_the_download_and_is_raised() -> None:
    """Disk full in the writer thread is raised to the caller, and receiving stops."""
    received = 0

    def endless() -> Iterator[bytes]:
        nonlocal received
        while True:
            received += 1
            yield b"x" * 1000

    with pytest.raises(OSError, match="No space left"):
        pipe_to_file(endless(), _FullDisk(), hashlib.sha256(), _bar(), limit=10**12)
    assert received < 100


def test_more_than_the_limit_stops_early() -> None:
    """A server sending more than the manifest's size is cut off just past the limit."""
    got = pipe_to_file(_chunks(10**6), io.BytesIO(), hashlib.sha256(), _bar(), limit=5000)
    assert 5000 < got <= 6000
