"""A stop says what is true for the task that stopped, and a second signal during Packer's
20 s SIGINT grace never skips the kill of what Packer started."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from invoke.exceptions import Exit

import tasks
from imagefactory.guest import packer
from imagefactory.util.taskrun import BUILD_STOPPED, FLEET_STOPPED, run_task

STATE_CHANGING_FLEET_TASKS = ("fleet_apply", "fleet_destroy", "fleet_rollout", "fleet_recover")


def test_fleet_rollout_does_not_claim_its_vms_are_stopped() -> None:
    """fleet.rollout's stop message is the fleet's, not the build's."""
    message = tasks.fleet_rollout.body.stop_message
    assert message == FLEET_STOPPED
    assert "VM of this run is stopped" not in message and "cache" not in message


@pytest.mark.parametrize("name", STATE_CHANGING_FLEET_TASKS)
def test_fleet_tasks_say_nothing_is_rolled_back(name: str) -> None:
    assert getattr(tasks, name).body.stop_message == FLEET_STOPPED


@pytest.mark.parametrize("name", ["build", "verify", "nightly"])
def test_build_tasks_say_their_vms_are_stopped(name: str) -> None:
    assert getattr(tasks, name).body.stop_message == BUILD_STOPPED


def test_other_tasks_claim_nothing_beyond_the_stop() -> None:
    assert tasks.images.body.stop_message == "the task stopped before it finished"


def test_a_real_sigterm_ends_a_task_with_its_message() -> None:
    """The process sends itself SIGTERM inside a task: Exit 143 with that task's line."""

    @run_task(stopped="the test task's own truth")
    def task() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    with pytest.raises(Exit) as info:
        task()
    assert (info.value.code, info.value.message) == (
        143,
        "stopped by SIGTERM: the test task's own truth",
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


class SecondSignal(Exception):
    """Stands for what a second Ctrl-C or SIGTERM raises in the main thread."""


@pytest.fixture
def alarm_raises() -> Iterator[None]:
    def second(_signum: int, _frame: object) -> None:
        raise SecondSignal

    previous = signal.signal(signal.SIGALRM, second)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.usefixtures("alarm_raises")
def test_a_second_signal_during_the_grace_wait_still_kills_the_group(tmp_path: Path) -> None:
    """A Packer that ignores SIGINT keeps _stop_group waiting; a signal 0.5 s into that wait
    still ends with the whole group (Packer and its QEMU) killed."""
    pidfile = tmp_path / "child.pid"
    script = f"trap '' INT\nsleep 1000 &\necho $! > {pidfile}\nwait\nwait\n"
    proc = subprocess.Popen(["bash", "-c", script], start_new_session=True, text=True)
    deadline = time.monotonic() + 10
    while not pidfile.is_file() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline, "the stand-in Packer never started its child"
        time.sleep(0.05)
    child = int(pidfile.read_text())
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    started = time.monotonic()
    with pytest.raises(SecondSignal):
        packer._stop_group(proc)
    assert time.monotonic() - started < 10  # the signal cut the 20 s wait short
    deadline = time.monotonic() + 5
    while (_alive(child) or proc.poll() is None) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (_alive(child), proc.poll()) == (False, -signal.SIGKILL)
