"""Receive and write a download in one thread, hash it in another, at the same time.

The receiving thread does what a plain download does (socket read, write(2)); sha256 runs
beside it in OpenSSL, which releases the GIL, so on two cores verification adds little to
the download time. A third thread for writing measured no better here (median of 3 pulls of
2 GiB: 4.04 s against 3.81 s). Chunks are shared between the threads, never copied.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, BinaryIO

from imagefactory.store.backend import BackgroundHasher
from imagefactory.store.transfer_meter import Progress

# Start writing each 64 MiB to disk as soon as it is in the file: the final fsync then has
# almost nothing left to do, instead of the whole image (dirty pages pile up otherwise).
WRITEBACK_STEP = 64 * 1024 * 1024
_QUEUE_CHUNKS = 8  # chunks the hasher may lag behind: bounds memory whatever the image size


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


def pipe_to_file(
    chunks: Iterator[bytes],
    out: BinaryIO,
    digest: Any,
    bar: Progress,
    limit: int,
    early_writeback: bool = True,
) -> int:
    """Receive `chunks` and append them to `out` here; feed `digest` in another thread.

    Returns the bytes received; stops early once more than `limit` arrived (caller rejects).
    A write error (e.g. disk full) is raised from here, after the hashing thread stopped.
    """
    # A chunk is written before it is queued, so once hashed it is safe to hand to the disk.
    # Early writeback only pays off before an fsync (pull); without one it is extra work.
    after = _EarlyWriteback(out).done if early_writeback else None
    hasher = BackgroundHasher(digest, queue_chunks=_QUEUE_CHUNKS, after=after, name="pull-sha256")
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
        hasher.close()
    if hasher.failure is not None:
        raise hasher.failure
    return got
