"""Every external command goes through a Runner, so tests can record or replace any of them."""

import os
import shutil
import subprocess
from typing import List, NamedTuple, Optional

from appcore.errors import CommandError


class Result(NamedTuple):
    argv: List[str]
    returncode: int
    stdout: str
    stderr: str


# Guests have sbin directories even when the unit's PATH is minimal.
SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Runner:
    """Runs commands with subprocess; subclasses in tests record some commands instead."""

    def __init__(self, timeout: int = 600) -> None:
        self.timeout = timeout
        self.history: List[List[str]] = []

    def which(self, name: str) -> Optional[str]:
        return shutil.which(name, path=os.environ.get("PATH", "") + ":" + SEARCH_PATH)

    def run(self, argv: List[str], check: bool = True) -> Result:
        """Run argv (never through a shell); raise CommandError on failure when check is true."""
        self.history.append(list(argv))
        exe = self.which(argv[0]) if "/" not in argv[0] else argv[0]
        if exe is None:
            if check:
                raise CommandError(
                    "command not found: {} (needed for: {})".format(argv[0], " ".join(argv))
                )
            return Result(list(argv), 127, "", "command not found: " + argv[0])
        try:
            proc = subprocess.run(
                [exe] + list(argv[1:]),
                stdin=subprocess.DEVNULL,  # a prompting tool (mkfs) must fail, never wait
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                universal_newlines=True,
                timeout=self.timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise CommandError(
                "command timed out after {}s: {}".format(self.timeout, " ".join(argv))
            ) from exc
        result = Result(list(argv), proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise CommandError(
                "command failed (exit {}): {}{}".format(
                    proc.returncode, " ".join(argv), (": " + " | ".join(tail)) if tail else ""
                )
            )
        return result
