"""Cache commits are all-or-nothing and locked per key; tool failures are clear."""

from __future__ import annotations

import multiprocessing
import os
import stat
import time
from pathlib import Path

import pytest

from imagefactory.engine.cache import LayerCache
from imagefactory.errors import BuildError, CacheError, MissingToolError, ToolError
from imagefactory.guest import accel, packer
from imagefactory.util.tools import require, run
from tests.prereq import require_tool


def test_staging_is_removed_when_build_fails(tmp_path: Path) -> None:
    cache = LayerCache(tmp_path)
    with pytest.raises(RuntimeError), cache.staging("k" * 64) as tmp:
        (tmp / "half.qcow2").write_bytes(b"partial")
        raise RuntimeError("packer failed")
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not cache.has("k" * 64)


def test_commit_writes_facts_last_and_refuses_twice(tmp_path: Path) -> None:
    cache = LayerCache(tmp_path)
    with cache.staging("a" * 64) as tmp:
        (tmp / "layer.qcow2").write_bytes(b"img")
        cache.commit("a" * 64, tmp, {"name": "x"}, {"image": "layer.qcow2"})
    assert cache.has("a" * 64) and cache.inputs("a" * 64) == {"name": "x"}
    with pytest.raises(CacheError), cache.staging("a" * 64) as tmp:
        cache.commit("a" * 64, tmp, {}, {"image": "layer.qcow2"})


def _hold_lock(root: str, key: str, held: multiprocessing.synchronize.Event) -> None:
    with LayerCache(Path(root)).lock(key):
        held.set()
        time.sleep(1.5)


def test_lock_serialises_builds_of_one_key(tmp_path: Path) -> None:
    held = multiprocessing.Event()
    other = multiprocessing.Process(target=_hold_lock, args=(str(tmp_path), "k", held))
    other.start()
    assert held.wait(10)
    start = time.monotonic()
    with LayerCache(tmp_path).lock("k"):
        waited = time.monotonic() - start
    other.join()
    assert waited > 0.5


def test_missing_tool_names_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("sys.executable", "/nonexistent/python")
    with pytest.raises(MissingToolError, match="apt-get install packer"):
        require("packer")


def _fake_tool(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_failed_command_shows_argv_code_and_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_tool(tmp_path, "qemu-img", 'echo "could not open disk" >&2; exit 7')
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(ToolError) as info:
        run(["qemu-img", "info", "x.qcow2"])
    text = str(info.value)
    assert "exit 7" in text and "qemu-img info x.qcow2" in text and "could not open" in text


def test_packer_failure_message_names_script_and_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provisioner failure (fake packer printing machine-readable lines) becomes BuildError."""
    _fake_tool(
        tmp_path,
        "packer",
        "\n".join(
            [
                "echo '1,,ui,say,==> qemu.layer: Provisioning with shell script: 10-x.sh'",
                "echo '1,,ui,message,    qemu.layer: boom%!(PACKER_COMMA) it broke'",
                "echo '1,,ui,error,Script exited with non-zero exit status: 3'",
                "exit 1",
            ]
        ),
    )
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    steps: list[str] = []
    run_ = packer.PackerRun(
        tmp_path / "t.pkr.hcl",
        {"a": 1},
        tmp_path / "w",
        tmp_path / "l.log",
        tmp_path / "serial.log",
        "5m",
    )
    with pytest.raises(BuildError) as info:
        packer.build(run_, on_step=steps.append)
    text = str(info.value)
    assert "provisioner script of this layer failed" in text
    assert "boom, it broke" in text and str(tmp_path / "l.log") in text
    assert steps == ["Provisioning with shell script: 10-x.sh"]
    assert "Script exited" in (tmp_path / "l.log").read_text()


def test_packer_ssh_timeout_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_tool(tmp_path, "packer", "echo '1,,ui,error,Timeout waiting for SSH.'; exit 1")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    run_ = packer.PackerRun(
        tmp_path / "t.pkr.hcl",
        {},
        tmp_path / "w",
        tmp_path / "l.log",
        tmp_path / "serial.log",
        "3m",
    )
    with pytest.raises(BuildError, match=r"no SSH connection .* ssh_timeout=3m.*serial\.log"):
        packer.build(run_)


def _ssh_timeout_then(tmp_path: Path, after: str) -> None:
    """A fake packer whose first run writes a console and times out on SSH; later runs
    print `after`'s lines (the counter file says which run it is)."""
    _fake_tool(
        tmp_path,
        "packer",
        f"n=$(cat {tmp_path}/runs 2>/dev/null || echo 0); echo $((n + 1)) > {tmp_path}/runs\n"
        f'if [ "$n" = 0 ]; then echo stalled > {tmp_path}/c.serial.log\n'
        "  echo '1,,ui,error,Timeout waiting for SSH.'; exit 1; fi\n" + after,
    )


def two_boot_run(tmp_path: Path) -> packer.PackerRun:
    return packer.PackerRun(
        tmp_path / "t.pkr.hcl",
        {},
        tmp_path / "w",
        tmp_path / "l.log",
        tmp_path / "c.serial.log",
        "2m",
        boot_attempts=2,
    )


def test_packer_boots_again_once_when_ssh_never_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No SSH on the first boot: a second boot is tried, said, and the first console kept."""
    _ssh_timeout_then(tmp_path, "echo '1,,ui,say,==> qemu.layer: Connected to SSH!'\nexit 0")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    said: list[str] = []
    run_ = two_boot_run(tmp_path)
    packer.build(run_, on_retry=said.append)
    assert (tmp_path / "runs").read_text() == "2\n"
    assert (tmp_path / "c.serial.boot1.log").read_text() == "stalled\n"
    assert said == [
        f"no SSH within ssh_timeout=2m on boot 1 of 2 (console kept in "
        f"{tmp_path / 'c.serial.boot1.log'}); booting the build VM again"
    ]


def test_packer_gives_up_after_its_boots_and_never_reruns_a_failed_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two boots without SSH fail naming both consoles; a failing script fails at once."""
    _ssh_timeout_then(tmp_path, "echo '1,,ui,error,Timeout waiting for SSH.'; exit 1")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    run_ = two_boot_run(tmp_path)
    with pytest.raises(packer.SshTimeout) as info:
        packer.build(run_)
    assert "2 boots tried; earlier consoles: " + str(tmp_path / "c.serial.boot1.log") in str(
        info.value
    )
    assert (tmp_path / "runs").read_text() == "2\n"
    (tmp_path / "runs").write_text("1\n")
    _ssh_timeout_then(
        tmp_path, "echo '1,,ui,error,Script exited with non-zero exit status: 3'; exit 1"
    )
    with pytest.raises(BuildError, match="provisioner script of this layer failed"):
        packer.build(run_)
    assert (tmp_path / "runs").read_text() == "2\n"


def test_kvm_probe_without_a_kernel_chooses_tcg(monkeypatch: pytest.MonkeyPatch) -> None:
    """No kernel to boot means no proof that KVM runs guests: the probe says no, and why."""
    require_tool("qemu-system-x86_64")
    monkeypatch.setattr(accel.os, "access", lambda *_: True)
    monkeypatch.setattr(accel, "find_probe_kernel", lambda *_: None)
    ok, why = accel.probe_kvm(timeout_s=1.0, deb_dirs=())
    assert not ok
    assert why.startswith("no Linux kernel to probe KVM with")


def test_stop_all_stops_a_packer_run_of_another_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in a parallel build: stop_all ends other threads' Packer runs and refuses new
    ones until allow_runs()."""
    import threading

    _fake_tool(tmp_path, "packer", "echo '1,,ui,say,==> qemu.layer: Waiting for SSH'; sleep 60")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")

    def run_(name: str) -> packer.PackerRun:
        return packer.PackerRun(
            tmp_path / "t.pkr.hcl",
            {},
            tmp_path / name,
            tmp_path / "l.log",
            tmp_path / "serial.log",
            "5m",
        )

    errors: list[BaseException] = []

    def target() -> None:
        try:
            packer.build(run_("w1"))
        except BaseException as exc:  # recorded for the assertion
            errors.append(exc)

    packer.allow_runs()
    worker = threading.Thread(target=target)
    started = time.monotonic()
    worker.start()
    while not packer._running and time.monotonic() - started < 10:
        time.sleep(0.05)
    packer.stop_all()
    worker.join(timeout=30)
    assert not worker.is_alive() and time.monotonic() - started < 30
    assert len(errors) == 1 and isinstance(errors[0], BuildError)
    with pytest.raises(BuildError):
        packer.build(run_("w2"))
    packer.allow_runs()
    assert not packer._running
