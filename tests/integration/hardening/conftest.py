"""Fixtures for the hardening integration tests: real SSG 0.1.65 content and real oscap."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.hardening import TailoringResult, derive_tailoring, load_pin
from imagefactory.hardening.pin import SsgPin
from tests.prereq import missing, require_tool

REPO = Path(__file__).parents[3]
PIN_FILE = REPO / "hardening" / "ssg-pin.yaml"


@pytest.fixture(scope="session")
def pin() -> SsgPin:
    require_tool("oscap")
    loaded = load_pin(PIN_FILE)
    if not loaded.target_path.is_file() or not loaded.source_path.is_file():
        missing(
            f"SSG {loaded.version} datastreams in {loaded.content_dir}",
            "apt-get install ssg-nondebian",
        )
    return loaded


@pytest.fixture(scope="session")
def derived(pin: SsgPin, tmp_path_factory: pytest.TempPathFactory) -> TailoringResult:
    """One real derivation shared by the tests (about 4 s)."""
    out = tmp_path_factory.mktemp("hardening")
    return derive_tailoring(
        pin, REPO / "hardening" / "waivers.yaml", REPO / "hardening" / "scripts", out
    )
