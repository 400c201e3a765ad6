"""Progress output: one line when a step starts, one when it ends, with elapsed time."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_local = threading.local()


@contextmanager
def prefixed(label: str) -> Iterator[None]:
    """Lines printed by this thread start with `[label] `: families built in parallel."""
    _local.prefix = f"[{label}] "
    try:
        yield
    finally:
        _local.prefix = ""


def _prefix() -> str:
    return getattr(_local, "prefix", "")


def say(msg: str) -> None:
    print(_prefix() + msg, flush=True)


def detail(msg: str) -> None:
    print(f"{_prefix()}      {msg}", flush=True)


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


class Timer:
    def __init__(self) -> None:
        self.start = time.monotonic()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.start


@contextmanager
def step(title: str) -> Iterator[Timer]:
    """Print `title`, run the block, then print how long it took (or that it failed)."""
    say(f"==> {title}")
    timer = Timer()
    try:
        yield timer
    except BaseException as exc:
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        say(f"    {reason} after {timer.seconds:.1f} s")
        raise
    say(f"    done in {timer.seconds:.1f} s")
