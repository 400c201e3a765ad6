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
from typing import ParamSpec, TypeVar, overload

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


# What a stop leaves, said only where it is true. The default claims nothing beyond the stop;
# a task that knows more passes its own (tasks.py): a build stops its VMs and leaves the cache
# as it was, a rollout does not undo what it already changed.
STOPPED_BEFORE_FINISHING = "the task stopped before it finished"
BUILD_STOPPED = (
    "every VM and Packer run of this task is stopped; the layer being built is not cached "
    "(layers finished earlier stay cached) and nothing half-published is visible"
)
FLEET_STOPPED = (
    "the fleet keeps what changed before the signal (nothing is rolled back); "
    "`invoke fleet.status` shows it as it is"
)


class _Saying:
    """@run_task(stopped=...): the decorator with a task's own stop message."""

    def __init__(self, stopped: str) -> None:
        self.stopped = stopped

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        return _wrap(fn, self.stopped)


@overload
def run_task(fn: Callable[P, R]) -> Callable[P, R]: ...


@overload
def run_task(*, stopped: str) -> _Saying: ...


def run_task(
    fn: Callable[P, R] | None = None, *, stopped: str = STOPPED_BEFORE_FINISHING
) -> Callable[P, R] | _Saying:
    """Task decorator: an imagefactory error becomes one message and its exit code; a reader
    that stops early (`invoke plan | head -1`) ends the task quietly, as with any CLI tool.
    A stop signal ends it with `stopped`, what is true after a stop of this task.

    It goes below @task (bare, or as @run_task(stopped=...)); functools.wraps keeps the
    signature Invoke reads for the flags.
    """
    if fn is None:
        return _Saying(stopped)
    return _wrap(fn, stopped)


def _wrap(fn: Callable[P, R], stopped: str) -> Callable[P, R]:
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
            raise Exit(f"stopped by {name}: {stopped}", code=128 + stop.signum) from None
        except KeyboardInterrupt:
            raise Exit(f"interrupted: {stopped}", code=130) from None
        except BrokenPipeError:
            if not _stdout_reader_gone():
                raise
            # What is still buffered goes nowhere, so the exit's own flush cannot fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise Exit(code=SIGPIPE_EXIT) from None

    wrapper.stop_message = stopped  # type: ignore[attr-defined]
    return wrapper
