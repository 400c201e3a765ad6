"""What every store backend offers: a flat key -> bytes namespace with atomic writes.

Keys are '/'-separated and never start with '.', so backends can keep their own hidden
temporaries. Writes of a key are all-or-nothing: a reader sees the old object, the new one,
or nothing, never a prefix of it.
"""

from __future__ import annotations

import abc
import hashlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Protocol

from imagefactory.errors import FactoryError
from imagefactory.store.transfer_meter import Progress

# 1 MiB: pulls measured faster than with 4 MiB or 256 KiB here (medians of 3 to 5 at 2 GiB);
# likely because big chunks need fresh memory each time and small ones more Python per byte.
READ_CHUNK = 1024 * 1024
_HASH_QUEUE = 2  # chunks the background hasher may lag behind the reader (memory bound)


@dataclass(frozen=True)
class Receipt:
    """What an upload proved about the bytes it sent: their sha256 and, where the server keeps
    one, the composite CRC32 it stored (with the part size that value depends on)."""

    sha256: str
    crc32: str | None = None  # e.g. "AbCdEf==-3"; None: the store keeps no checksum (fs)
    part_size: int | None = None


class StoreError(FactoryError):
    """The store cannot be reached, refused us, or holds something inconsistent."""


class ObjectMissing(StoreError):
    """A key that was expected does not exist."""


class Readable(Protocol):
    def read(self, size: int = -1) -> bytes: ...


class BackgroundHasher:
    """Feeds `digest` in its own thread from a bounded queue of chunks, so the caller's
    reading, sending or writing overlaps the hashing (OpenSSL drops the GIL); the bytes
    objects are shared, not copied. `after(n)` runs once each chunk of n bytes is hashed.
    An error in the thread is kept in `failure`; the queue is still drained, so `put` never
    blocks for good."""

    def __init__(
        self,
        digest: Any,
        *,
        queue_chunks: int,
        after: Callable[[int], object] | None = None,
        name: str = "sha256",
    ) -> None:
        self.digest = digest
        self._after = after
        self.failure: BaseException | None = None
        self._pending: queue.Queue[bytes | None] = queue.Queue(maxsize=queue_chunks)
        self._worker = threading.Thread(target=self._loop, name=name, daemon=True)
        self._worker.start()
        self._closed = False

    def _loop(self) -> None:
        try:
            while (data := self._pending.get()) is not None:
                self.digest.update(data)
                if self._after is not None:
                    self._after(len(data))
        except BaseException as exc:
            self.failure = exc
            while self._pending.get() is not None:
                pass

    def put(self, data: bytes) -> None:
        self._pending.put(data)

    def close(self) -> None:
        """Stop the thread (after it has hashed everything put so far)."""
        if not self._closed:
            self._closed = True
            self._pending.put(None)
            self._worker.join()


class HashingReader:
    """Wraps a file: every read() also feeds sha256 (in a BackgroundHasher) and the progress
    bar, in one read pass. Use it as a context manager, then `hexdigest()`."""

    def __init__(self, fh: BinaryIO | Readable, progress: Progress | None) -> None:
        self._fh = fh
        self._progress = progress
        self.count = 0
        self._hasher = BackgroundHasher(hashlib.sha256(), queue_chunks=_HASH_QUEUE)

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        if data:
            self._hasher.put(data)
            self.count += len(data)
            if self._progress is not None:
                self._progress.update(len(data))
        return data

    def close(self) -> None:
        """Stop the hashing thread (after it has hashed everything read so far)."""
        self._hasher.close()

    def hexdigest(self) -> str:
        self.close()
        if self._hasher.failure is not None:
            raise self._hasher.failure
        return str(self._hasher.digest.hexdigest())

    def __enter__(self) -> HashingReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class StoreBackend(abc.ABC):
    """The operations publish, pull, channels and prune need; two implementations: fs, s3."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where this store is, for messages (never includes credentials)."""

    @abc.abstractmethod
    def check(self) -> None:
        """Raise StoreError with the reason if the store is unreachable or unusable."""

    @abc.abstractmethod
    def size(self, key: str) -> int | None:
        """Size of an object, or None if it does not exist."""

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """A small object's content; ObjectMissing if absent."""

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write a small object atomically."""

    @abc.abstractmethod
    def put_new(self, key: str, data: bytes) -> bool:
        """Write a small object only if `key` does not exist (atomically: of two writers, one
        wins); False, and nothing written, when it exists."""

    @abc.abstractmethod
    def upload_file(
        self, key: str, path: Path, progress: Progress | None, part_size: int | None = None
    ) -> Receipt:
        """Upload a large file atomically (in parts of `part_size` where the store has parts;
        None: the configured size); the receipt's sha256 is of the bytes read while sending."""

    @abc.abstractmethod
    def upload_stream(self, key: str, source: Readable) -> Receipt:
        """Upload a stream of unknown length atomically, read chunk by chunk (never whole in
        memory); nothing is left under `key` if the source or the store fails."""

    def stored_crc32(self, key: str) -> str | None:
        """The composite CRC32 the server keeps for an object, or None if it keeps none (the
        directory store never does: its bytes are re-hashed instead)."""
        return None

    def stored_sha256(self, key: str) -> str | None:
        """The SHA-256 (hex) of the whole object if the server keeps one and says it is of
        the whole object, else None (composite part checksums are not that)."""
        return None

    @abc.abstractmethod
    def copy(self, src: str, dst: str) -> None:
        """Copy an object inside the store without moving its bytes through this host."""

    @abc.abstractmethod
    def iter_from(self, key: str, offset: int) -> Iterator[bytes]:
        """Stream an object from byte `offset` to its end (a ranged read)."""

    @abc.abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """All keys under a prefix, recursively, sorted."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object; absent is fine."""

    @abc.abstractmethod
    def abandoned_uploads(self, prefix: str) -> list[str]:
        """Unfinished uploads under a prefix left by killed publishers (not visible as keys)."""

    @abc.abstractmethod
    def discard_abandoned(self, prefix: str) -> int:
        """Remove unfinished uploads under a prefix; return how many were removed."""
