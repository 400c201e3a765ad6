"""What is installed on this host, against what the project pins: drift made visible.

System tools come from Debian and are not locked: their versions are printed by bootstrap.sh
and `invoke doctor`, so two hosts that disagree can be told apart. Python packages come from
requirements.lock (exact versions with hashes); a package installed at another version is
drift, named with both versions.

`python -m imagefactory.util.installed` prints both tables (bootstrap.sh calls it).
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from imagefactory.util.paths import REPO
from imagefactory.util.tools import which

LOCK = REPO / "requirements.lock"

# The Debian packages whose versions shape what a build, a scan or a test measures.
SYSTEM_PACKAGES = (
    "packer",
    "qemu-system-x86",
    "qemu-utils",
    "ovmf",
    "libvirt-daemon",
    "openscap-scanner",
    "ssg-nondebian",
    "mmdebstrap",
    "mariadb-server",
    "galera-4",
    "mariadb-backup",
    "chromium",
    "prometheus",
    "ansible-core",
)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


@dataclass(frozen=True)
class Drift:
    package: str
    locked: str
    installed: str | None  # None: not installed


def system_versions() -> dict[str, str | None]:
    """Each package of SYSTEM_PACKAGES with its installed Debian version (None: absent),
    plus SeaweedFS's `weed`, which comes from a Python wheel but reports its own version."""
    found: dict[str, str | None] = dict.fromkeys(SYSTEM_PACKAGES)
    if which("dpkg-query"):
        done = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev} ${Version}\\n"]
            + list(SYSTEM_PACKAGES),
            capture_output=True,
            text=True,
            check=False,
        )
        for line in done.stdout.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] == "ii":
                found[parts[0]] = parts[2]
    found["weed (seaweedfs)"] = _weed_version()
    return found


def locked_versions(lock: Path = LOCK) -> dict[str, str]:
    """Package name (normalised) -> exact version, from the lock file."""
    pins: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        if m := _PIN.match(line):
            pins[_normalise(m.group(1))] = m.group(2)
    return pins


def python_drift(lock: Path = LOCK) -> list[Drift]:
    """Locked packages installed at another version, or not installed, in this environment."""
    installed = {
        _normalise(d.metadata["Name"]): d.version
        for d in metadata.distributions()
        if d.metadata["Name"]
    }
    return [
        Drift(name, want, installed.get(name))
        for name, want in sorted(locked_versions(lock).items())
        if installed.get(name) != want
    ]


def describe_python(lock: Path = LOCK) -> tuple[bool, str]:
    """(no drift, one line) for doctor."""
    if not lock.is_file():
        return False, f"{lock} is missing: nothing says which versions to install"
    drift = python_drift(lock)
    count = len(locked_versions(lock))
    if not drift:
        return True, f"all {count} packages of {lock.name} installed at their locked versions"
    shown = ", ".join(f"{d.package} {d.installed or 'missing'} (locked {d.locked})" for d in drift)
    return False, f"{len(drift)} of {count} differ from {lock.name}: {shown}"


def _weed_version() -> str | None:
    weed = which("weed")
    if weed is None:
        return None
    done = subprocess.run([weed, "version"], capture_output=True, text=True, check=False)
    m = re.search(r"\d+\.\d+(?:\.\d+)?", done.stdout + done.stderr)
    return m.group(0) if m else None


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> int:
    print("system tools (Debian packages; not locked):")
    for name, version in system_versions().items():
        print(f"  {name:<20} {version or '-'}")
    ok, line = describe_python()
    print(f"python packages: {line}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
