"""The firmware a layer and a verify boot start, seen on the guest's consoles under TCG.

No OS is booted: the disk is an empty qcow2, so the firmware runs its boot manager, finds
nothing and says so. OVMF writes its boot manager lines ("BdsDxe: failed to load Boot0001
...") to the serial console; SeaBIOS writes nothing there (no VGA, no sercon) but announces
itself on QEMU's debug console (I/O port 0x402), which the verify checks add to vm.py's
argv. Each wait is bounded (WAIT_S); every process started here is stopped through its own
process group (QEMU, or Packer and the QEMU it started).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from imagefactory.choices import OVMF_CODE, Firmware
from imagefactory.guest import vm
from imagefactory.guest.credential import generate_credential
from tests.integration.test_templates import LAYER_VARS
from tests.prereq import missing, require_tools

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
WAIT_S = 60.0
OVMF_MARKER = b"BdsDxe"  # EDK II's boot manager, on the serial console
SEABIOS_MARKER = b"SeaBIOS (version"  # first line on the debug console
PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA test"


def require_ovmf() -> None:
    if not OVMF_CODE.is_file():
        missing(f"OVMF firmware {OVMF_CODE}", "apt-get install ovmf")


def empty_disk(tmp_path: Path) -> Path:
    disk = tmp_path / "empty.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "1G"], check=True)
    return disk


def debugcon(log: Path) -> list[str]:
    return [
        "-chardev",
        f"file,id=fwdbg,path={log}",
        "-device",
        "isa-debugcon,iobase=0x402,chardev=fwdbg",
    ]


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop `proc` and what it started (its own process group): interrupt, then kill."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def wait_for(
    argv: Sequence[str],
    watched: Path,
    marker: bytes,
    output: Path,
    env: dict[str, str] | None = None,
) -> tuple[float | None, str]:
    """Run `argv` (its output to `output`) until `marker` shows up in `watched`, WAIT_S pass
    or it exits: (seconds it took or None, what to show when the marker did not come)."""
    started = time.monotonic()
    with output.open("wb") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    seen = b""
    try:
        while time.monotonic() - started < WAIT_S:
            seen = watched.read_bytes() if watched.is_file() else b""
            if marker in seen:
                return time.monotonic() - started, ""
            if proc.poll() is not None:
                break
            time.sleep(0.25)
    finally:
        stop(proc)
    return None, (
        f"no {marker!r} in {watched.name} within {WAIT_S:.0f} s; it holds "
        f"{seen[-300:]!r}; output: {output.read_text(errors='replace')[-1500:]}"
    )


def test_verify_boot_of_a_uefi_image_starts_ovmf(tmp_path: Path) -> None:
    require_tools("qemu-system-x86_64", "qemu-img")
    require_ovmf()
    serial, dbg = tmp_path / "serial.log", tmp_path / "debugcon.log"
    argv = vm.qemu_argv(
        empty_disk(tmp_path),
        accelerator="tcg",
        port=vm.free_port(),
        login_pubkey=PUBKEY,
        serial_log=serial,
        firmware="uefi",
        extra_args=debugcon(dbg),
    )
    took, why = wait_for(argv, serial, OVMF_MARKER, tmp_path / "qemu.out")
    assert took is not None, why
    print(f"verify boot, OVMF under TCG: {OVMF_MARKER.decode()} after {took:.1f} s")
    assert SEABIOS_MARKER not in (dbg.read_bytes() if dbg.is_file() else b"")


def test_verify_boot_of_a_bios_image_starts_seabios(tmp_path: Path) -> None:
    require_tools("qemu-system-x86_64", "qemu-img")
    serial, dbg = tmp_path / "serial.log", tmp_path / "debugcon.log"
    argv = vm.qemu_argv(
        empty_disk(tmp_path),
        accelerator="tcg",
        port=vm.free_port(),
        login_pubkey=PUBKEY,
        serial_log=serial,
        firmware="bios",
        extra_args=debugcon(dbg),
    )
    took, why = wait_for(argv, dbg, SEABIOS_MARKER, tmp_path / "qemu.out")
    assert took is not None, why
    print(f"verify boot, SeaBIOS under TCG: {SEABIOS_MARKER.decode()} after {took:.1f} s")


def test_layer_of_a_uefi_family_starts_ovmf(tmp_path: Path) -> None:
    """packer/layer.pkr.hcl, run by Packer with the uefi_firmware the engine renders for a
    UEFI family, boots the parent disk with OVMF (stopped once OVMF speaks; no SSH)."""
    require_tools("packer", "qemu-system-x86_64", "qemu-img", "ssh-keygen")
    require_ovmf()
    parent = empty_disk(tmp_path)
    serial = tmp_path / "serial.log"
    script = tmp_path / "10-do-nothing.sh"
    script.write_text("#!/bin/bash\nset -euo pipefail\n")
    variables = {
        **LAYER_VARS,
        "parent_image": str(parent),
        "parent_sha256": hashlib.sha256(parent.read_bytes()).hexdigest(),
        "output_dir": str(tmp_path / "out"),
        "ssh_private_key_file": str(generate_credential(tmp_path / "k", "test").private),
        "serial_log": str(serial),
        "files_dir": str(tmp_path),
        "scripts": [str(script)],
        "uefi_firmware": Firmware.UEFI.ovmf(),
    }
    var_file = tmp_path / "vars.pkrvars.json"
    var_file.write_text(json.dumps(variables))
    argv = ["packer", "build", f"-var-file={var_file}", str(REPO / "packer/layer.pkr.hcl")]
    # Packer's plugins listen on unix sockets under TMPDIR: keep that path short.
    with tempfile.TemporaryDirectory(prefix="ifpk-", dir="/tmp") as sockets:
        env = {
            **os.environ,
            "TMPDIR": sockets,
            "CHECKPOINT_DISABLE": "1",
            "PACKER_CACHE_DIR": str(tmp_path / "packer_cache"),
        }
        took, why = wait_for(argv, serial, OVMF_MARKER, tmp_path / "packer.out", env=env)
    assert took is not None, why
    print(f"layer VM (Packer), OVMF under TCG: {OVMF_MARKER.decode()} after {took:.1f} s")
