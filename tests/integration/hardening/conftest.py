"""Fixtures for the hardening integration tests: real SSG 0.1.65 content and real oscap."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from imagefactory.hardening import TailoringResult, derive_tailoring, load_pin
from imagefactory.hardening.pin import SsgPin

REPO = Path(__file__).parents[3]
PIN_FILE = REPO / "hardening" / "ssg-pin.yaml"


def _missing(what: str) -> None:
    """In CI a missing prerequisite fails loudly; locally it skips with the reason."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"prerequisite missing in CI: {what}")
    pytest.skip(f"prerequisite missing: {what}")


@pytest.fixture(scope="session")
def require_tool() -> Callable[[str], str]:
    def check(name: str) -> str:
        found = shutil.which(name)
        if found is None:
            _missing(f"tool {name!r} on PATH")
        assert found is not None
        return found

    return check


@pytest.fixture(scope="session")
def pin(require_tool: Callable[[str], str]) -> SsgPin:
    require_tool("oscap")
    loaded = load_pin(PIN_FILE)
    if not loaded.target_path.is_file() or not loaded.source_path.is_file():
        _missing(f"SSG {loaded.version} datastreams in {loaded.content_dir} (ssg-nondebian)")
    return loaded


@pytest.fixture(scope="session")
def derived(pin: SsgPin, tmp_path_factory: pytest.TempPathFactory) -> TailoringResult:
    """One real derivation shared by the tests (about 4 s)."""
    out = tmp_path_factory.mktemp("hardening")
    return derive_tailoring(
        pin, REPO / "hardening" / "waivers.yaml", REPO / "hardening" / "scripts", out
    )
