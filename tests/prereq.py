"""A missing test prerequisite, handled the same way everywhere (no silent skip).

In CI a missing tool, package, file or privilege fails the test loudly; elsewhere the test
skips, and the reason says what is missing and how to get it. "In CI" means the CI variable
is set to anything but "", "0" or "false" (.ci/run exports CI=true).

    from tests.prereq import missing, require_root, require_tool, require_tools

    qemu_img = require_tool("qemu-img")          # its path, or fail (CI) / skip
    require_tools("packer", "ssh-keygen")        # every missing one named in one message
    missing("OVMF firmware", "apt-get install ovmf")  # anything that is not a tool
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import NoReturn

import pytest

from imagefactory.util.tools import INSTALL_HINTS

# How to get the tools only the tests use (the factory's own: imagefactory.util.tools).
TEST_TOOL_HINTS: dict[str, str] = {
    "aws": "pip install -e '.[dev]' (awscli)",
    "vermin": "pip install -e '.[dev]'",
    "shellcheck": "apt-get install shellcheck",
    "rpmbuild": "apt-get install rpm",
    "mkfs.xfs": "apt-get install xfsprogs",
    "python3.6": "set APPCORE_PYTHON36, or `pyenv install 3.6`",
    "virt-xml-validate": "apt-get install libvirt-clients",
    "virsh": "apt-get install libvirt-clients",
    "libvirtd": "apt-get install libvirt-daemon libvirt-daemon-driver-qemu",
    "xmllint": "apt-get install libxml2-utils",
    "unshare": "apt-get install util-linux",
    "nsenter": "apt-get install util-linux",
    "dnsmasq": "apt-get install dnsmasq-base",
    "mariadb": "apt-get install mariadb-client",
    "mountpoint": "apt-get install util-linux",
    "blkid": "apt-get install util-linux",
    "wipefs": "apt-get install util-linux",
    "ip": "apt-get install iproute2",
    "ssh": "apt-get install openssh-client",
    "gpg": "apt-get install gnupg",
    "gpgconf": "apt-get install gnupg",
    "curl": "apt-get install curl",
    "chromium": "apt-get install chromium (bootstrap.sh installs it)",
    "systemctl": "apt-get install systemd",
    "systemd-analyze": "apt-get install systemd",
    "promtool": "apt-get install prometheus (bootstrap.sh)",
    "ansible-inventory": "apt-get install ansible-core (bootstrap.sh)",
}

# Looked in after PATH: beside the running Python (awscli, vermin, ksvalidator in the venv)
# and the sbin directories a non-root PATH may lack (mkfs.xfs, sfdisk).
_EXTRA_DIRS = (os.path.dirname(sys.executable), "/usr/sbin", "/sbin")


def in_ci() -> bool:
    """True when running in CI: CI is set to anything but "", "0" or "false"."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def missing(what: str, hint: str) -> NoReturn:
    """Stop the test for a missing prerequisite: fail in CI, skip with the reason elsewhere."""
    message = f"prerequisite missing: {what} ({hint})"
    if in_ci():
        pytest.fail(f"{message}; CI must provide it (bootstrap.sh)", pytrace=False)
    pytest.skip(message)


def find_tool(name: str) -> str | None:
    """Path of `name` on PATH, beside the running Python, or in /usr/sbin or /sbin."""
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *_EXTRA_DIRS])
    return shutil.which(name, path=search)


def install_hint(name: str) -> str:
    return TEST_TOOL_HINTS.get(name) or INSTALL_HINTS.get(name) or f"install {name!r}"


def require_tool(name: str) -> str:
    """Path of the tool `name`; a missing one fails in CI and skips elsewhere."""
    found = find_tool(name)
    if found is None:
        missing(f"tool {name!r}", install_hint(name))
    return found


def require_tools(*names: str) -> None:
    """require_tool for several tools; every missing one is named in one message."""
    absent = [n for n in names if find_tool(n) is None]
    if absent:
        missing(
            "tool(s) " + ", ".join(repr(n) for n in absent),
            "; ".join(install_hint(n) for n in absent),
        )


def require_root(why: str) -> None:
    """The test must run as root (as CI does); `why` says what needs it."""
    if os.geteuid() != 0:
        missing(f"root ({why})", "run the tests as root, as CI does")
