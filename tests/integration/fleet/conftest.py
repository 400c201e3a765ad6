"""Fixtures for fleet tests: a directory store holding signed templates (tests/fleetkit.py
has the store and the simulated hypervisors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.store.settings import StoreSettings
from tests.fleetkit import TemplateStore
from tests.prereq import require_tools
from tests.storekit import make_signing_keys


@pytest.fixture
def template_store(tmp_path: Path) -> TemplateStore:
    require_tools("qemu-img", "ssh-keygen")
    keys = make_signing_keys(tmp_path / "keys")
    settings = StoreSettings(
        kind="fs",
        path=tmp_path / "store",
        allowed_signers=keys.allowed_signers,
        image_dir=tmp_path / "pulled",
    )
    return TemplateStore(settings, keys.private_key)
