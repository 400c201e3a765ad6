"""Receive and write a download in one thread, hash it in another, at the same time.

The receiving thread does what a plain download does (socket read, write(2)); sha256 runs
beside it in OpenSSL, which releases the GIL, so on two cores verification adds little to
the download time. A third thread for writing was tried and was slower: every extra thread
is another GIL hand-off per chunk. Chunks are shared between the threads, never copied.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from imagefactory.store.progress import Progress

# Start writing each 64 MiB to disk as soon as it is in the file: the final fsync then has
# almost nothing left to do, instead of the whole image (dirty pages pile up otherwise).
WRITEBACK_STEP = 64 * 1024 * 1024
_QUEUE_CHUNKS = 8  # per stage: bounds memory to a few chunks whatever the image size


class _EarlyWriteback:
    """Asks the kernel to write finished ranges of `out` now (posix_fadvise DONTNEED starts
    writeback of dirty pages without waiting, and drops pages already on disk). Called from
    the hashing thread, so the receiving thread never waits for it; bytes still in `out`'s
    buffer are simply not dirty yet and are left to the final fsync."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._start = out.tell()
        self._done = self._start

    def done(self, count: int) -> None:
        self._done += count
        if self._done - self._start >= WRITEBACK_STEP and hasattr(os, "posix_fadvise"):
            length = self._done - self._start
            os.posix_fadvise(self._out.fileno(), self._start, length, os.POSIX_FADV_DONTNEED)
            self._start = self._done


class _Stage:
    """One consumer thread; its error is kept for the receiving thread to raise."""

    def __init__(self, name: str, consume: Callable[[bytes], object]) -> None:
        self._consume = consume
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE_CHUNKS)
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (chunk := self._queue.get()) is not None:
                self._consume(chunk)
        except BaseException as exc:
            self.failure = exc
            while self._queue.get() is not None:  # keep the receiver from blocking
                pass

    def put(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def finish(self) -> None:
        self._queue.put(None)
        self._thread.join()


def pipe_to_file(
    chunks: Iterator[bytes], out: BinaryIO, digest: Any, bar: Progress, limit: int
) -> int:
    """Receive `chunks` and append them to `out` here; feed `digest` in another thread.

    Returns the bytes received; stops early once more than `limit` arrived (caller rejects).
    A write error (e.g. disk full) is raised from here, after the hashing thread stopped.
    """
    writeback = _EarlyWriteback(out)

    def hash_chunk(chunk: bytes) -> None:
        digest.update(chunk)
        writeback.done(len(chunk))  # written before it was queued: safe to flush now

    hasher = _Stage("pull-sha256", hash_chunk)
    got = 0
    try:
        for chunk in chunks:
            if got > limit or hasher.failure is not None:
                break
            out.write(chunk)
            hasher.put(chunk)
            got += len(chunk)
            bar.update(len(chunk))
    finally:
        hasher.finish()
    if hasher.failure is not None:
        raise hasher.failure
    return got
