"""Shared test helpers: a missing prerequisite fails in CI and skips (with a reason) locally."""

from __future__ import annotations

import os

import pytest

from imagefactory.tools import which

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(*names: str) -> None:
    missing = [n for n in names if which(n) is None]
    if missing:
        msg = f"required tool(s) not installed: {', '.join(missing)}"
        if IN_CI:
            pytest.fail(msg + " (CI must install them: see .ci/run)")
        pytest.skip(msg)
