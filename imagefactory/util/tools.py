"""Typed wrappers around the external programs the factory drives, with clear failures."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from imagefactory.errors import MissingToolError, ToolError

# How to install each prerequisite on a Debian 12 build host.
INSTALL_HINTS: dict[str, str] = {
    "packer": "apt-get install packer",
    "qemu-system-x86_64": "apt-get install qemu-system-x86",
    "qemu-img": "apt-get install qemu-utils",
    "mmdebstrap": "apt-get install mmdebstrap",
    "mkfs.vfat": "apt-get install dosfstools",
    "mcopy": "apt-get install mtools",
    "syslinux": "apt-get install syslinux syslinux-common",
    "sfdisk": "apt-get install fdisk",
    "mkfs.ext4": "apt-get install e2fsprogs",
    "debugfs": "apt-get install e2fsprogs",
    "xfs_db": "apt-get install xfsprogs",
    "blkid": "apt-get install util-linux",
    "losetup": "apt-get install mount",
    "ssh-keygen": "apt-get install openssh-client",
    "oscap": "apt-get install openscap-scanner ssg-nondebian",
    "ksvalidator": "pip install pykickstart",
    "git": "apt-get install git",
}

_VERSION_ARGS: dict[str, list[str]] = {
    "packer": ["version"],
    "qemu-img": ["--version"],
    "qemu-system-x86_64": ["--version"],
    "mmdebstrap": ["--version"],
}


# Secrets the factory itself reads (the store's key, the GRUB hash it renders into the
# kickstart). No program it starts uses them, so none of them sees them: a Packer plugin, a
# provisioner or a test spec that dumps its environment leaks nothing (imagefactory.store.settings
# and imagefactory.sources.install name the same variables; a unit test keeps them in step).
SECRET_ENV = frozenset(
    {
        "IMAGEFACTORY_S3_ACCESS_KEY",
        "IMAGEFACTORY_S3_SECRET_KEY",
        "IMAGEFACTORY_S3_CREDENTIALS",
        "IMAGEFACTORY_GRUB_PASSWORD_HASH",
    }
)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a program the factory starts: ours without SECRET_ENV, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    env.update(extra or {})
    return env


def which(tool: str) -> str | None:
    """Like shutil.which, also looking beside the running Python (tools pip put in the venv)."""
    return shutil.which(tool) or shutil.which(tool, path=os.path.dirname(sys.executable))


def require(tool: str) -> str:
    """Absolute path of `tool`, or MissingToolError naming the install command."""
    found = which(tool)
    if found is None:
        raise MissingToolError(tool, INSTALL_HINTS.get(tool, f"install '{tool}'"))
    return found


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    hint: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; on failure raise ToolError with its last output lines."""
    args = [os.fspath(a) for a in argv]
    args[0] = require(args[0])
    full_env = child_env(env)
    try:
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            env=full_env,
            cwd=cwd,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ToolError(args, -1, f"timed out after {timeout:.0f} s", hint) from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise ToolError(args, proc.returncode, tail, hint)
    return proc


@functools.cache
def version(tool: str) -> str:
    """The tool's own version string (first version-looking token of its --version output)."""
    proc = run([tool, *_VERSION_ARGS.get(tool, ["--version"])])
    text = proc.stdout + proc.stderr
    match = re.search(r"\d+\.\d+(?:\.\d+)?(?:[-+~][\w.+~-]*)?", text)
    return match.group(0) if match else text.strip().splitlines()[0]


def versions(tools: Sequence[str]) -> dict[str, str]:
    return {t: version(t) for t in tools}
