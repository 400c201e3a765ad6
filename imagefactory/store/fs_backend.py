"""The embedded default store: a local directory with the same key layout as the S3 store."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from imagefactory.store.backend import (
    READ_CHUNK,
    HashingReader,
    ObjectMissing,
    Readable,
    Receipt,
    StoreBackend,
    StoreError,
)
from imagefactory.store.transfer_meter import Progress
from imagefactory.util.fsutil import write_atomic

_UPLOAD_MARK = ".upload-"  # hidden temporaries: .<name>.upload-<pid>
_MAX_PART = 200  # bytes of one file name (the store's own names stay under 120)


class FsBackend(StoreBackend):
    """Objects are files under `root`; writes go to a hidden temp file and are renamed."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if (
            not key
            or "\x00" in key  # no file name holds one: open() would raise ValueError
            or any(p in ("", ".", "..") or p.startswith(".") for p in parts)
            # the hidden temporaries beside a file add up to ~50 bytes to its 255-byte name
            or any(len(p.encode()) > _MAX_PART for p in parts)
        ):
            raise StoreError(f"invalid store key {key!r}")
        return self.root.joinpath(*parts)

    def describe(self) -> str:
        return f"directory store {self.root}"

    def check(self, create: bool = True) -> None:
        """Usable: a writable directory, created if missing. With create=False (doctor, which
        changes nothing) a missing directory is judged by the nearest existing ancestor it
        would be created in."""
        if not create:
            probe = self.root.absolute()
            while not os.path.lexists(probe) and probe != probe.parent:
                probe = probe.parent
            if not probe.is_dir():
                raise StoreError(f"{self.describe()}: {probe} is not a directory")
            if not os.access(probe, os.W_OK | os.X_OK):
                raise StoreError(f"{self.describe()}: {probe} is not writable by this user")
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.describe()}: cannot create: {exc.strerror}") from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreError(f"{self.describe()}: not writable by this user")

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(f"{self.describe()}: {key} does not exist") from None

    def put_bytes(self, key: str, data: bytes) -> None:
        write_atomic(self._path(key), data)

    def put_new(self, key: str, data: bytes) -> bool:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}{_UPLOAD_MARK}{os.getpid()}-{id(data)}")
        write_atomic(tmp, data)
        try:
            os.link(tmp, dest)  # unlike a rename, a link never replaces an existing file
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def upload_file(
        self, key: str, path: Path, progress: Progress | None, part_size: int | None = None
    ) -> Receipt:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}{_UPLOAD_MARK}{os.getpid()}")
        try:
            with (
                path.open("rb") as src,
                tmp.open("wb") as out,
                HashingReader(src, progress) as reader,
            ):
                while chunk := reader.read(READ_CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
                digest = reader.hexdigest()
            os.replace(tmp, dest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            reason = "disk full" if exc.errno == errno.ENOSPC else exc.strerror
            raise StoreError(f"{self.describe()}: writing {key} failed: {reason}") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return Receipt(digest)

    def upload_stream(self, key: str, source: Readable) -> Receipt:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}{_UPLOAD_MARK}{os.getpid()}")
        try:
            with tmp.open("wb") as out, HashingReader(source, None) as reader:
                while chunk := reader.read(READ_CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
                digest = reader.hexdigest()
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return Receipt(digest)

    def copy(self, src: str, dst: str) -> None:
        source, dest = self._path(src), self._path(dst)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}{_UPLOAD_MARK}{os.getpid()}")
        try:
            try:
                os.link(source, tmp)  # same filesystem: no bytes copied at all
            except OSError:
                shutil.copyfile(source, tmp)
            os.replace(tmp, dest)
        except FileNotFoundError:
            tmp.unlink(missing_ok=True)
            raise ObjectMissing(f"{self.describe()}: {src} does not exist") from None

    def iter_from(self, key: str, offset: int) -> Iterator[bytes]:
        try:
            fh = self._path(key).open("rb")
        except FileNotFoundError:
            raise ObjectMissing(f"{self.describe()}: {key} does not exist") from None
        with fh:
            fh.seek(offset)
            while chunk := fh.read(READ_CHUNK):
                yield chunk

    def list_keys(self, prefix: str) -> list[str]:
        start = self.root / prefix.rpartition("/")[0]
        if not start.is_dir():
            return []
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith("."):
                    continue
                key = (Path(dirpath) / name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Drop empty directories up to the root so listings stay tidy.
        parent = path.parent
        while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent

    def abandoned_uploads(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.exists():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            # Every hidden file is a temporary of an upload or an atomic write.
            for p in base.rglob(".*")
            if p.is_file()
        )

    def discard_abandoned(self, prefix: str) -> int:
        found = self.abandoned_uploads(prefix)
        for rel in found:
            (self.root / rel).unlink(missing_ok=True)
        return len(found)
