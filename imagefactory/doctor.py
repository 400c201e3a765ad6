"""Check a build host's prerequisites and say how to install whatever is missing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from imagefactory.choices import Accelerator
from imagefactory.errors import FactoryError
from imagefactory.guest import accel
from imagefactory.util import installed, tools
from imagefactory.util.paths import REPO
from imagefactory.util.sourcetree import hashing_rule

REQUIRED = ("packer", "qemu-system-x86_64", "qemu-img", "ssh-keygen", "git")
# The seal reads the finished disk offline (imagefactory/guest/offline.py).
SEAL = ("sfdisk", "blkid", "debugfs", "xfs_db", "losetup")
STANDIN = ("mmdebstrap", "mkfs.vfat", "mcopy", "syslinux", "sfdisk", "mkfs.ext4")
CHECKS = ("ksvalidator", "oscap")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def _tool(name: str, required: bool) -> Check:
    path = tools.which(name)
    if path is None:
        return Check(name, False, f"missing: {tools.INSTALL_HINTS.get(name, name)}", required)
    try:
        return Check(name, True, f"{tools.version(name)} ({path})", required)
    except FactoryError:
        return Check(name, True, path, required)


def directory_problem(path: Path, writable: bool = True) -> str | None:
    """Why `path` cannot be a directory the factory uses (None: it can). A path that does not
    exist yet is judged by its nearest existing ancestor, which must be a directory it can be
    created in. Nothing is created or changed."""
    path = path.absolute()
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    so = "" if probe == path else f", so {path} cannot be created"
    if not probe.is_dir():
        kind = "a regular file, not a directory" if probe.is_file() else "not a directory"
        return f"{probe} is {kind}{so}"
    if writable and not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable by this user{so}"
    return None


def run_checks(
    artifacts: Path,
    accelerator: Accelerator = Accelerator.AUTO,
    probe_timeout_s: float = 10.0,
    store_check: tuple[str, bool, str] | None = None,
) -> list[Check]:
    """Every prerequisite with its state; nothing is installed or changed."""
    checks = [_tool(n, True) for n in (*REQUIRED, *SEAL)]
    checks += [_tool(n, False) for n in (*STANDIN, *CHECKS) if n not in SEAL]
    if tools.which("qemu-system-x86_64"):
        choice = accel.choose(accelerator, probe_timeout_s, (artifacts / "cache" / "debs",))
        checks.append(Check("accelerator", True, f"{choice.accelerator}: {choice.reason}"))
    art_problem = directory_problem(artifacts)
    later = "" if artifacts.exists() else " (created by the first build)"
    art_detail = art_problem or f"{artifacts.resolve()}{later}"
    checks.append(Check("artifacts", art_problem is None, art_detail))
    if store_check is not None:
        checks.append(Check(store_check[0], store_check[1], store_check[2]))
    checks.append(Check("layer inputs", True, hashing_rule(REPO)))
    return checks + version_checks()


def version_checks() -> list[Check]:
    """Installed versions: Python packages against the lock (drift is a warning), and the
    Debian packages that shape results (shown; a missing optional one is not a failure)."""
    ok, line = installed.describe_python()
    checks = [Check("python packages", ok, line, required=False)]
    for name, version in installed.system_versions().items():
        checks.append(Check(f"{name} (deb)", True, version or "not installed", required=False))
    return checks


def render(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
        lines.append(f"  [{mark}] {c.name:<20} {c.detail}")
    return "\n".join(lines)
