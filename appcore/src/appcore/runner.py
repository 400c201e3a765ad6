"""Every external command goes through a Runner, so tests can record or replace any of them."""

import os
import select
import shutil
import subprocess
import tempfile
import time
from typing import IO, List, NamedTuple, Optional

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
        return checked(Result(list(argv), proc.returncode, proc.stdout, proc.stderr), check)

    def run_on_terminal(self, argv: List[str], answer: str = "n\n") -> Result:
        """Run argv with a new pseudo-terminal as stdin, stdout and stderr, `answer` already
        typed; fails like run(check=True). For a tool that checks for existing data only when a
        terminal is attached (mke2fs) and then asks: it reads the "n" and stops."""
        self.history.append(list(argv))
        exe = self.which(argv[0]) if "/" not in argv[0] else argv[0]
        if exe is None:
            raise CommandError(f"command not found: {argv[0]}")
        master, slave = os.openpty()
        try:
            proc = subprocess.Popen([exe] + list(argv[1:]), stdin=slave, stdout=slave, stderr=slave)
        finally:
            os.close(slave)
        chunks: List[bytes] = []
        deadline = time.monotonic() + self.timeout
        timed_out = False
        try:
            os.write(master, answer.encode())
            while time.monotonic() < deadline:
                if not select.select([master], [], [], deadline - time.monotonic())[0]:
                    continue
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: the tool and its children closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            else:
                timed_out = True
                proc.kill()
            returncode = proc.wait()
        finally:
            os.close(master)
        if timed_out:
            raise CommandError(
                "command timed out after {}s: {}".format(self.timeout, " ".join(argv))
            )
        out = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
        return checked(Result(list(argv), returncode, out, ""), True)

    def pipe(
        self,
        argv: List[str],
        stdin: Optional[IO[bytes]],
        stdout: Optional[IO[bytes]],
        stderr_through: bool = False,
    ) -> Result:
        """Run argv with these byte streams as stdin and stdout (None: /dev/null), no time
        limit (a backup takes as long as the data); fails like run(check=True), with the end
        of its stderr, or with stderr passed through to ours (`stderr_through`: the caller
        reads what the tool reports there, a backup's binlog position)."""
        self.history.append(list(argv))
        exe = self.which(argv[0]) if "/" not in argv[0] else argv[0]
        if exe is None:
            raise CommandError(f"command not found: {argv[0]}")
        with tempfile.TemporaryFile() as err:
            proc = subprocess.run(
                [exe] + list(argv[1:]),
                stdin=stdin if stdin is not None else subprocess.DEVNULL,
                stdout=stdout if stdout is not None else subprocess.DEVNULL,
                stderr=None if stderr_through else err,
            )
            err.seek(max(0, err.seek(0, os.SEEK_END) - 16384))
            tail = err.read().decode("utf-8", "replace")
        return checked(Result(list(argv), proc.returncode, "", tail), True)


def checked(result: Result, check: bool) -> Result:
    """result, or CommandError naming the command and the last lines it printed."""
    if check and result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise CommandError(
            "command failed (exit {}): {}{}".format(
                result.returncode,
                " ".join(result.argv),
                (": " + " | ".join(tail)) if tail else "",
            )
        )
    return result
