"""A private, real libvirtd for the tests: its own network namespace (loopback only) and its
own /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt and /var/cache/libvirt
(bind mounts in its own mount namespace), so the host's libvirt, if any, is never touched.

Recipe and traps: ../shared/notes/hypervisor-libvirt.md. QEMU runs as root with no security
driver and no ownership changes (the test templates must stay untouched); its stdio goes to
files, as there is no virtlogd.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
"""
DIRS = {
    "etc": "/etc/libvirt",
    "run": "/run/libvirt",
    "lib": "/var/lib/libvirt",
    "log": "/var/log/libvirt",
    "cache": "/var/cache/libvirt",
}


@dataclass(frozen=True)
class Libvirtd:
    pid: int
    base: Path

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.base / 'run' / 'libvirt-sock'}"

    def in_netns(self, argv: list[str]) -> list[str]:
        """argv run inside the daemon's network namespace (where the VMs' forwards listen)."""
        return ["nsenter", f"--net=/proc/{self.pid}/ns/net", *argv]

    def qemu_log(self, domain: str) -> str:
        path = self.base / "log" / "qemu" / f"{domain}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def start_libvirtd(base: Path, timeout_s: float = 60.0) -> Libvirtd:
    """Start the daemon and wait until it answers on its socket (the first answer includes
    QEMU's capability probe, ~10 s here)."""
    for sub in DIRS:
        (base / sub).mkdir(parents=True, exist_ok=True)
    for name in ("libvirt.conf", "libvirt-admin.conf"):
        if Path("/etc/libvirt", name).exists():
            shutil.copy(Path("/etc/libvirt", name), base / "etc" / name)
    (base / "etc" / "qemu.conf").write_text(QEMU_CONF)
    (base / "etc" / "libvirtd.conf").write_text('unix_sock_rw_perms = "0700"\n')
    for target in DIRS.values():
        Path(target).mkdir(parents=True, exist_ok=True)  # bind targets; empty on the host
    binds = " && ".join(f"mount --bind {base / sub} {target}" for sub, target in DIRS.items())
    script = f"ip link set lo up && {binds} && exec libvirtd"
    log = (base / "libvirtd.log").open("ab")
    proc = subprocess.Popen(
        ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", script],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    daemon = Libvirtd(proc.pid, base)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("libvirtd exited: " + (base / "libvirtd.log").read_text()[-2000:])
        ok = (
            subprocess.run(
                ["virsh", "-c", daemon.uri, "version"], capture_output=True, timeout=timeout_s
            ).returncode
            == 0
        )
        if ok:
            return daemon
        time.sleep(1)
    stop_libvirtd(daemon)
    raise RuntimeError(
        f"libvirtd did not answer within {timeout_s:.0f} s: "
        + (base / "libvirtd.log").read_text()[-2000:]
    )


def stop_libvirtd(daemon: Libvirtd) -> None:
    """Power off every domain, then stop the daemon (its namespaces go with it)."""
    subprocess.run(
        [
            "sh",
            "-c",
            f"for d in $(virsh -c '{daemon.uri}' list --name); do "
            f"virsh -c '{daemon.uri}' destroy $d; done",
        ],
        capture_output=True,
        timeout=60,
    )
    try:
        os.killpg(daemon.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(30):
        try:
            os.kill(daemon.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    os.killpg(daemon.pid, signal.SIGKILL)
