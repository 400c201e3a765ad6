"""Refreshing requirements.lock: pip-compile with hashes from pyproject.toml's ranges.

The lock is written to a temp file and renamed over the old one only when pip-compile
succeeded, so a failed refresh leaves the lock as it was. The local pip configuration is not
read (PIP_CONFIG_FILE=/dev/null, no find-links): the lock names only what the package index
serves, so it installs the same on any host.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from imagefactory.errors import FactoryError
from imagefactory.util.installed import LOCK, locked_versions
from imagefactory.util.paths import REPO

EXTRAS = ("dev", "hypervisor")


def compile_argv(output: Path, upgrade: str | None) -> list[str]:
    """The pip-compile command line that writes the lock (README names it too)."""
    # Paths relative to REPO (pip-compile runs there): pip-compile writes them into the lock's
    # header and its "via" lines, which must not name the checkout the lock was refreshed in.
    argv = [
        str(Path(sys.executable).parent / "pip-compile"),
        "--quiet",
        "--generate-hashes",
        "--allow-unsafe",  # pip and setuptools are locked like everything else
        "--strip-extras",
        "--no-emit-index-url",
        "--no-emit-find-links",
        *(f"--extra={e}" for e in EXTRAS),
        f"--output-file={os.path.relpath(output, REPO)}",
    ]
    argv += ["--upgrade-package", upgrade] if upgrade else ["--upgrade"]
    return [*argv, "pyproject.toml"]


def refresh(upgrade: str | None = None, lock: Path = LOCK) -> list[str]:
    """Write a new lock (all packages at their newest allowed versions, or only `upgrade`);
    returns one line per package whose version changed."""
    before = locked_versions(lock) if lock.is_file() else {}
    tmp = lock.with_name(f".{lock.name}.new")
    if lock.is_file():  # pip-compile keeps unchanged pins of the file it writes
        tmp.write_bytes(lock.read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
    env["PIP_CONFIG_FILE"] = os.devnull
    done = subprocess.run(compile_argv(tmp, upgrade), cwd=REPO, env=env, check=False)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise FactoryError(f"pip-compile failed (exit {done.returncode}); {lock} unchanged")
    # pip-compile writes the output path into its header: name the real file there.
    tmp.write_text(
        tmp.read_text().replace(f"--output-file={tmp.name}", f"--output-file={lock.name}")
    )
    os.replace(tmp, lock)
    after = locked_versions(lock)
    return [
        f"{name}: {before.get(name, '-')} -> {after.get(name, '-')}"
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    ]
