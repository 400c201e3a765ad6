"""Every host path goes through Host, so tests can run against a temporary root directory."""

import json
import os
import tempfile


class Host:
    """The machine App-Core configures, seen through a root prefix ("/" in a real guest)."""

    def __init__(self, root: str = "/") -> None:
        self.root = os.path.abspath(root)

    def path(self, guest_path: str) -> str:
        """The real path of an absolute guest path (e.g. /etc/hostname) under the root."""
        if not guest_path.startswith("/"):
            raise ValueError("guest path must be absolute: " + guest_path)
        return os.path.join(self.root, guest_path.lstrip("/"))

    def exists(self, guest_path: str) -> bool:
        return os.path.lexists(self.path(guest_path))

    def read_text(self, guest_path: str, limit: int = 1024 * 1024) -> str:
        """Read a small text file; undecodable bytes are replaced, never fatal."""
        with open(self.path(guest_path), "rb") as fh:
            return fh.read(limit).decode("utf-8", "replace")

    def read_bytes(self, guest_path: str, limit: int = 1024 * 1024) -> bytes:
        with open(self.path(guest_path), "rb") as fh:
            return fh.read(limit)

    def read_json(self, guest_path: str) -> object:
        return json.loads(self.read_text(guest_path))

    def up_to_date(self, guest_path: str, text: str, mode: int) -> bool:
        """The file exists with exactly this content and mode."""
        real = self.path(guest_path)
        if not os.path.isfile(real) or (os.stat(real).st_mode & 0o7777) != mode:
            return False
        with open(real, "rb") as fh:
            return fh.read() == text.encode("utf-8")

    def write_text(self, guest_path: str, text: str, mode: int = 0o644) -> bool:
        """Write atomically (temp file + rename); False when content and mode were already so."""
        if self.up_to_date(guest_path, text, mode):
            return False
        write_atomic(self.path(guest_path), text.encode("utf-8"), mode)
        return True

    def remove(self, guest_path: str) -> bool:
        real = self.path(guest_path)
        if os.path.lexists(real):
            os.unlink(real)
            return True
        return False

    def makedirs(self, guest_path: str, mode: int = 0o755) -> bool:
        real = self.path(guest_path)
        if os.path.isdir(real):
            return False
        os.makedirs(real, mode)
        return True


def write_atomic(real_path: str, data: bytes, mode: int) -> None:
    """Write to a temp file beside the target, fsync, then rename: readers never see half a file."""
    directory = os.path.dirname(real_path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(real_path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, real_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
