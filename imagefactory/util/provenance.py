"""Where a build came from: git revision and dirty flag, build host, times."""

from __future__ import annotations

import socket
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from imagefactory.util.tools import child_env


def git_state(repo: Path) -> dict[str, object]:
    """{"revision": sha or None, "dirty": bool or None}; None where git cannot tell."""

    def git(*args: str) -> str | None:
        proc = subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            check=False,
            env=child_env(),
            stdin=subprocess.DEVNULL,
        )
        return proc.stdout.strip() if proc.returncode == 0 else None

    revision = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"revision": revision, "dirty": None if status is None else bool(status)}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def host() -> str:
    return socket.gethostname()
