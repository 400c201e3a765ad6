"""Boot an image under QEMU for verification: throwaway writes, SSH on loopback, login injected.

The image is never modified (`-snapshot`). The login's public key reaches the guest the way a
hypervisor passes it in production: an SMBIOS type 11 OEM string read by the image's
boot-time access hook, so verifying also proves that path works. A UEFI image boots with
OVMF as the build's layers did (see qemu_argv).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko

from imagefactory.choices import Firmware
from imagefactory.errors import FactoryError
from imagefactory.guest.ssh import open_ssh, quiet_paramiko, run_command
from imagefactory.util.tools import child_env, require

ACCESS_KEY_PREFIX = "imagefactory:ssh-authorized-key="
ADMIN_USER = "ops"


@dataclass(frozen=True)
class BootedVM:
    port: int
    user: str
    key: Path
    serial_log: Path

    @property
    def testinfra_host(self) -> str:
        return f"paramiko://{self.user}@127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def smbios_oem(value: str) -> list[str]:
    """QEMU arguments for one SMBIOS type 11 string (commas doubled, as QEMU requires)."""
    return ["-smbios", f"type=11,value={value.replace(',', ',,')}"]


def connect(port: int, user: str, key: Path, timeout: float = 10.0) -> paramiko.SSHClient:
    """An SSH session to the guest's forwarded port, logging in with `key` only."""
    return open_ssh(("127.0.0.1", port), user, key, timeout)


def ssh_run(
    port: int, user: str, key: Path, command: str, timeout: float = 10.0
) -> tuple[int, str] | None:
    """(exit status, stdout) of one command over SSH, or None if the guest is not reachable."""
    quiet_paramiko()  # slirp accepts and resets connections while the guest boots
    client: paramiko.SSHClient | None = None
    try:
        client = connect(port, user, key, timeout)
        return run_command(client, command, timeout)
    except (paramiko.SSHException, OSError, EOFError):
        return None
    finally:
        if client is not None:
            client.close()


def ssh_ready(port: int, user: str, key: Path) -> bool:
    return ssh_run(port, user, key, "true") == (0, "")


_BOOT_ID = "cat /proc/sys/kernel/random/boot_id"


def reboot(vm: BootedVM, timeout_s: float = 300) -> None:
    """Reboot the guest inside the same QEMU (the -snapshot overlay and the data disks keep
    their contents) and wait until SSH answers from the new boot."""
    before = ssh_run(vm.port, vm.user, vm.key, _BOOT_ID)
    if before is None:
        raise FactoryError(f"cannot reach the guest on port {vm.port} to reboot it")
    ssh_run(vm.port, vm.user, vm.key, "sudo systemctl reboot", timeout=5)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(3)
        now = ssh_run(vm.port, vm.user, vm.key, _BOOT_ID)
        if now is not None and now[0] == 0 and now[1] != before[1]:
            return
    raise FactoryError(
        f"the guest did not come back over SSH within {timeout_s:.0f} s of a "
        f"reboot; console: {vm.serial_log}"
    )


# systemd's own words while the boot transaction still has jobs; `--wait` needs systemd 240,
# and OL8 ships 239, so the state is polled.
STARTING = ("initializing", "starting")
STARTUP_TIMEOUT_S = 300.0


def wait_for_startup(vm: BootedVM, timeout_s: float = STARTUP_TIMEOUT_S) -> str:
    """Wait until systemd has finished the boot (SSH answers before units like appcore.service
    have run) and return its state: "running", "degraded", ..., or the state it was still in
    after `timeout_s` ("starting"), so that the caller's checks report what is missing."""
    deadline = time.monotonic() + timeout_s
    state = "unreachable"
    while time.monotonic() < deadline:
        answer = ssh_run(vm.port, vm.user, vm.key, "systemctl is-system-running")
        if answer is not None:
            state = answer[1].strip() or "unknown"
            if state not in STARTING:
                break
        time.sleep(2)
    return state


def firmware_args(firmware: str) -> list[str]:
    """QEMU arguments for how the image boots (a manifest's "firmware"): "bios" is QEMU's
    default SeaBIOS; "uefi" is OVMF's code as -bios, the file the Packer layers boot with
    (choices.OVMF_CODE: QEMU maps a read-only copy, no NVRAM; assumed: the image boots its
    fallback loader EFI/BOOT/BOOTX64.EFI, so no boot entry is needed)."""
    try:
        choice = Firmware(firmware)
    except ValueError:
        known = ", ".join(f.value for f in Firmware)
        raise FactoryError(f"unknown firmware '{firmware}' (one of: {known})") from None
    return choice.qemu_args()


def qemu_argv(
    image: Path,
    *,
    accelerator: str,
    port: int,
    login_pubkey: str,
    serial_log: Path,
    firmware: str = "bios",
    extra_args: Sequence[str] = (),
    memory_mib: int = 1024,
    cpus: int = 1,
) -> list[str]:
    """The QEMU command line of a verify boot (SSH forwarded from 127.0.0.1:`port`).

    One vCPU and a virtio-rng: the rare TCG boots that froze (early kernel, no more console
    output) or stalled in getrandom were all two-vCPU boots without an entropy device; the
    image under test does not depend on either."""
    return [
        require("qemu-system-x86_64"),
        "-machine",
        "pc",
        "-accel",
        accelerator,
        "-smp",
        str(cpus),
        "-m",
        str(memory_mib),
        *firmware_args(firmware),
        "-display",
        "none",
        "-nodefaults",
        "-serial",
        f"file:{serial_log}",
        "-snapshot",
        # bootindex: SeaBIOS boots only the first disk it finds, and extra disks (data disks
        # given in extra_args) may come first on the PCI bus (OVMF follows it too).
        "-drive",
        f"file={image},if=none,id=os,format=qcow2",
        "-device",
        "virtio-blk-pci,drive=os,bootindex=0",
        "-nic",
        f"user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:{port}-:22",
        "-object",
        "rng-random,id=rng0,filename=/dev/urandom",
        "-device",
        "virtio-rng-pci,rng=rng0",
        *smbios_oem(ACCESS_KEY_PREFIX + login_pubkey),
        *extra_args,
    ]


@contextlib.contextmanager
def boot(
    image: Path,
    *,
    accelerator: str,
    login_key: Path,
    login_pubkey: str,
    serial_log: Path,
    firmware: str = "bios",
    extra_args: Sequence[str] = (),
    timeout_s: float = 300,
    memory_mib: int = 1024,
    cpus: int = 1,
    user: str = ADMIN_USER,
) -> Iterator[BootedVM]:
    """Boot `image` read-only with `firmware` (its manifest's: bios or uefi) and yield once
    SSH with `login_key` works; always stop QEMU."""
    port = free_port()
    argv = qemu_argv(
        image,
        accelerator=accelerator,
        port=port,
        login_pubkey=login_pubkey,
        serial_log=serial_log,
        firmware=firmware,
        extra_args=extra_args,
        memory_mib=memory_mib,
        cpus=cpus,
    )
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=child_env(),
    )
    try:
        deadline = time.monotonic() + timeout_s
        while not ssh_ready(port, user, login_key):
            if proc.poll() is not None:
                err = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")
                raise FactoryError(f"QEMU exited while booting {image}: {err.strip()[-500:]}")
            if time.monotonic() > deadline:
                raise FactoryError(
                    f"no SSH login to {image} as {user} within {timeout_s:.0f} s;"
                    f" guest console: {serial_log}"
                )
            time.sleep(2)
        yield BootedVM(port, user, login_key, serial_log)
    finally:
        proc.kill()
        proc.wait()
