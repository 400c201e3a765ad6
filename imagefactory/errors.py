"""Error types. Every error a user can cause says what is wrong, where, and what to do."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP (what CI systems, systemd and `timeout` send), raised in the main
    thread so that it unwinds like Ctrl-C: Packer and its QEMU are stopped, temp dirs go."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class FactoryError(Exception):
    """Base class: a failure the CLI reports as one clear message and a non-zero exit."""

    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One validation finding: the file, a YAML path inside it, the message and a hint."""

    file: str
    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.file}: {self.path or '.'}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class ConfigError(FactoryError):
    """Bad input. Carries every problem found, not only the first."""

    exit_code = 2

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in configuration:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


class ToolError(FactoryError):
    """An external command failed; names the command, its exit code and its last lines."""

    def __init__(
        self, argv: Sequence[str], returncode: int, tail: str = "", hint: str = ""
    ) -> None:
        import shlex

        self.argv = tuple(argv)
        self.returncode = returncode
        msg = f"command failed (exit {returncode}): {shlex.join(self.argv)}"
        if tail:
            msg += "\n" + tail.rstrip()
        if hint:
            msg += f"\nhint: {hint}"
        super().__init__(msg)


class MissingToolError(FactoryError):
    """A prerequisite program is not installed."""

    def __init__(self, tool: str, install: str) -> None:
        super().__init__(f"required tool '{tool}' was not found on PATH (install it: {install})")


class BuildError(FactoryError):
    """A layer build failed; the cache is left as it was."""


class CacheError(FactoryError):
    """The layer cache is inconsistent or locked."""
