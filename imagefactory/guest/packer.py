"""Run one Packer build for one layer: render its var file, stream progress, clean up.

Packer runs in its own process group so that Ctrl-C, a failure or a timeout always takes the
QEMU it started down with it. Its machine-readable output is kept whole in a log file; the
terminal gets one short line per step and, on failure, the last lines of the log.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagefactory.errors import BuildError
from imagefactory.util.tools import child_env, require

FILES_TARGET = "/var/tmp/imagefactory-files"
_STEP_PREFIX = "==> "


@dataclass(frozen=True)
class PackerRun:
    template: Path
    variables: dict[str, Any]
    workdir: Path  # scratch: var file, TMPDIR, packer cache
    log: Path
    serial_log: Path
    ssh_timeout: str
    # Boots tried when the guest never answers SSH: a TCG guest very rarely stalls in early
    # boot (seen once in CI; it answers in ~20 s otherwise), and one fresh boot costs less
    # than a failed night. A failing script is never run again.
    boot_attempts: int = 1


class SshTimeout(BuildError):
    """The build VM never answered SSH within ssh_timeout."""


def _decode(field: str) -> str:
    return field.replace("%!(PACKER_COMMA)", ",").replace("\\n", "\n").replace("\\r", "")


def _ui_text(line: str) -> tuple[str, str] | None:
    """(kind, text) of a machine-readable `ui` line, else None."""
    parts = line.rstrip("\n").split(",", 4)
    if len(parts) == 5 and parts[2] == "ui":
        return parts[3], _decode(parts[4])
    return None


def build(
    run: PackerRun,
    on_step: Callable[[str], None] | None = None,
    on_retry: Callable[[str], None] | None = None,
) -> None:
    """Run `packer build` for one layer; raise BuildError (with the log tail) if it fails.
    A guest that never answers SSH is booted again, up to run.boot_attempts times; the
    console of each failed boot is kept beside the log."""
    packer = require("packer")
    run.workdir.mkdir(parents=True, exist_ok=True)
    var_file = run.workdir / "layer.pkrvars.json"
    var_file.write_text(json.dumps(run.variables, indent=2) + "\n")
    kept: list[Path] = []
    for boot in range(1, max(run.boot_attempts, 1) + 1):
        try:
            with tempfile.TemporaryDirectory(prefix="ifpk-", dir=_short_tmp_base()) as sockets:
                _run_packer(packer, run, var_file, Path(sockets), on_step)
            return
        except SshTimeout as exc:
            if boot >= run.boot_attempts:
                if not kept:
                    raise
                earlier = ", ".join(str(p) for p in kept)
                raise SshTimeout(
                    f"{exc}\n  {boot} boots tried; earlier consoles: {earlier}"
                ) from None
            if run.serial_log.exists():
                kept.append(run.serial_log.with_suffix(f".boot{boot}.log"))
                os.replace(run.serial_log, kept[-1])
            if on_retry:
                where = f"console kept in {kept[-1]}" if kept else "no console written"
                on_retry(
                    f"no SSH within ssh_timeout={run.ssh_timeout} on boot {boot} of "
                    f"{run.boot_attempts} ({where}); booting the build VM again"
                )


def _short_tmp_base() -> str:
    """Packer's plugins listen on unix sockets under TMPDIR, and a socket path has a
    107-byte limit: a deep workdir (a pytest tmp path, a long artifacts dir) would make
    every plugin fail with "bind: invalid argument"."""
    base = tempfile.gettempdir()
    return base if len(base) <= 40 else "/tmp"


def _run_packer(
    packer: str,
    run: PackerRun,
    var_file: Path,
    sockets: Path,
    on_step: Callable[[str], None] | None,
) -> None:
    env = child_env(
        {
            "TMPDIR": str(sockets),
            "PACKER_CACHE_DIR": str(run.workdir / "packer_cache"),
            "CHECKPOINT_DISABLE": "1",  # no version check calls home from a build host
            "PACKER_NO_COLOR": "1",
        }
    )
    argv = [
        packer,
        "build",
        "-machine-readable",
        "-on-error=cleanup",
        f"-var-file={var_file}",
        str(run.template),
    ]
    tail: list[str] = []
    with run.log.open("a") as log:
        log.write(f"$ {' '.join(argv)}\n")
        log.flush()
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,
        )
        with _running_lock:
            _running.add(proc)
            cancelled = _cancelled.is_set()
        if cancelled:  # stop_all() ran between this build's start and its Popen
            _stop_group(proc)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                ui = _ui_text(line)
                if ui is None:
                    continue
                text = ui[1].strip()
                tail = (tail + text.splitlines())[-25:]
                if on_step and ui[0] == "say" and text.startswith(_STEP_PREFIX):
                    on_step(text[len(_STEP_PREFIX) :].split(": ", 1)[-1])
            code = proc.wait()
        except BaseException:
            _stop_group(proc)
            raise
        finally:
            with _running_lock:
                _running.discard(proc)
    if code != 0:
        message = _failure_message(run, code, tail)
        if message.startswith(_NO_SSH):
            raise SshTimeout(message)
        raise BuildError(message)


# Packer runs started by any thread. Ctrl-C reaches only the main thread (Packer has its own
# session), so a parallel build stops the other threads' Packer runs through this set.
_running: set[subprocess.Popen[str]] = set()
_running_lock = threading.Lock()


_cancelled = threading.Event()


def allow_runs() -> None:
    _cancelled.clear()


def stop_all() -> None:
    """Stop every Packer run of this process, and refuse new ones until allow_runs();
    the builds then fail and clean up."""
    with _running_lock:
        _cancelled.set()
        procs = list(_running)
    for proc in procs:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """Interrupt Packer and everything it started; kill what does not stop in time."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    finally:
        # Also when a second signal (Ctrl-C again, SIGTERM) interrupts the wait above: what
        # Packer started is killed before that signal ends the task.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


_NO_SSH = "no SSH connection to the build VM"


def _failure_message(run: PackerRun, code: int, tail: list[str]) -> str:
    text = "\n".join(tail)
    if "Timeout waiting for SSH" in text:
        head = (
            f"{_NO_SSH} within ssh_timeout={run.ssh_timeout}; "
            f"the guest's console is in {run.serial_log}"
        )
    elif "Script exited with non-zero exit status" in text or "non-zero exit status" in text:
        head = "a provisioner script of this layer failed"
    else:
        head = f"packer exited with status {code}"
    shown = "\n".join(f"    {line}" for line in tail[-15:])
    return f"{head}\n  last lines of {run.log}:\n{shown}"
