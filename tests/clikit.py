"""Running an invoke task as a user does, from a test: its own process, no terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_task(
    *args: str,
    cwd: Path = REPO,
    env: Mapping[str, str] | None = None,
    without_store_env: bool = False,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """`invoke ARGS` with this repository's tasks; `env` is added to this process's
    environment (with `without_store_env`, none of its IMAGEFACTORY_* variables are kept)."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not (without_store_env and k.startswith("IMAGEFACTORY_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(REPO), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        env={**base, **(env or {})},
        timeout=timeout,
    )
