"""Fixtures for fleet tests: a directory store holding signed templates (tests/fleetkit.py
has the store and the simulated hypervisors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.fleet import commands
from imagefactory.fleet.hypervisor import Connections
from imagefactory.store.settings import StoreSettings
from tests.fleetkit import TemplateStore, group, simulated_host, write_fleet
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
    hosts = {
        name: {
            "uri": simulated_host(tmp_path, name),
            "storage_dir": str(tmp_path / name),
            "capacity": {"vcpu": 16, "memory_gib": 64, "storage_gb": 100},
            "network": {"bridge": "br-fleet"},
        }
        for name in ("hv-a", "hv-b", "hv-c")
    }
    s = template_store.settings
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
        store={
            "kind": "fs",
            "path": str(s.path),
            "allowed_signers": str(s.allowed_signers),
            "image_dir": str(s.image_dir),
        },
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
