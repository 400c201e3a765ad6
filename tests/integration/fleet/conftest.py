"""Fixtures for fleet tests: a directory store holding signed templates (tests/fleetkit.py
has the store and the simulated hypervisors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.fleet import commands
from imagefactory.fleet.hypervisor import Connections
from imagefactory.store.settings import StoreSettings
from tests.fleetkit import TemplateStore, group, three_simulated_hosts, write_fleet
from tests.prereq import require_tools
from tests.rolloutkit import SMALL
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


@pytest.fixture
def fleet(tmp_path: Path, template_store: TemplateStore):
    """Applied on version 1 (day 24); version 2 (day 25) then on the stable channel."""
    hosts = three_simulated_hosts(tmp_path)
    path = write_fleet(
        tmp_path,
        hosts,
        {
            "pers-ms": group(
                "REDPANDA", "persistence", 3, "cluster", "ms-main", ("DATA_MS", 2), **SMALL
            ),
            "wrk-app": group(
                "APP", "workers", 4, "independent", "wrk-app", rollout_batch=2, **SMALL
            ),
        },
        store=template_store.store_section(),
    )
    v1 = {
        f: template_store.publish(f, tmp_path / "sealed", day=24)
        for f in ("persistence", "workers")
    }
    conns = Connections()
    commands.apply(path, conns=conns)
    v2 = {
        f: template_store.publish(f, tmp_path / "sealed", day=25)
        for f in ("persistence", "workers")
    }
    assert v1 != v2
    yield path, conns, v1, v2
    conns.close()
