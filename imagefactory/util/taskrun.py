"""How an invoke task ends: one message and an exit code, never a traceback.

An imagefactory error becomes its message and exit code; Ctrl-C, SIGTERM and SIGHUP stop the
work the same way (Packer and QEMU stopped, temp dirs removed) and exit 130/143/129; a reader
that goes away (`invoke plan | head -1`) ends the task quietly, as with any CLI tool.
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import signal
import sys
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

from invoke.exceptions import Exit

from imagefactory.errors import FactoryError, Stopped

P = ParamSpec("P")
R = TypeVar("R")


SIGPIPE_EXIT = 141  # 128 + SIGPIPE: how a shell reports a command whose reader went away


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe nobody reads any more (and not some other pipe or socket of
    the command that broke: that one stays an error)."""
    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _stopping_on(*signums: signal.Signals) -> Iterator[None]:
    """While the task runs, these signals stop it the way Ctrl-C does (see errors.Stopped)."""

    def stop(signum: int, _frame: object) -> None:
        raise Stopped(signum)

    previous = {s: signal.signal(s, stop) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_task(fn: Callable[P, R]) -> Callable[P, R]:
    """Task decorator: an imagefactory error becomes one message and its exit code; a reader
    that stops early (`invoke plan | head -1`) ends the task quietly, as with any CLI tool.

    It goes below @task; functools.wraps keeps the signature Invoke reads for the flags.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with _stopping_on(signal.SIGTERM, signal.SIGHUP):
                result = fn(*args, **kwargs)
            sys.stdout.flush()  # a closed pipe fails here, not in the interpreter's exit
            return result
        except FactoryError as err:
            raise Exit(f"error: {err}", code=err.exit_code) from None
        except Stopped as stop:
            name = signal.Signals(stop.signum).name
            raise Exit(
                f"stopped by {name}: every VM of this run is stopped, the cache is unchanged",
                code=128 + stop.signum,
            ) from None
        except KeyboardInterrupt:
            raise Exit("interrupted: the cache is unchanged", code=130) from None
        except BrokenPipeError:
            if not _stdout_reader_gone():
                raise
            # What is still buffered goes nowhere, so the exit's own flush cannot fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise Exit(code=SIGPIPE_EXIT) from None

    return wrapper
