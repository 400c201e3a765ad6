"""A revoked version on three simulated hypervisors (libvirt's test driver, no daemon, no VM
boot): apply and rollout refuse it before any VM is touched, status marks VMs running one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from imagefactory.fleet import commands
from imagefactory.store import api
from imagefactory.store.revocation import RevokedError
from tests.fleetkit import TemplateStore
from tests.metricskit import promtool_check_metrics, samples
from tests.rolloutkit import Recorder, versions

pytestmark = pytest.mark.integration
REASON = "CVE-2026-0001 in openssl"


def revoke(store: TemplateStore, version: str) -> None:
    settings = dataclasses.replace(store.settings, signing_key=store.signing_key)
    api.revoke_version(settings, "persistence", version, REASON)


def test_rollout_refuses_a_revoked_channel_target(fleet, template_store: TemplateStore) -> None:
    """stable's persistence version is revoked: rollout (and its dry run) fail naming version
    and reason; no VM moved, nothing of that version pulled."""
    path, conns, v1, v2 = fleet
    revoke(template_store, v2["persistence"])
    rec = Recorder(path, conns)
    expected = f"persistence {v2['persistence']} is revoked \\({REASON}; at "
    with pytest.raises(RevokedError, match=expected):
        commands.rollout(path, dry_run=True, conns=conns)
    with pytest.raises(RevokedError, match=expected) as err:
        commands.rollout(path, conns=conns, health=rec)
    assert "not deploying it (channel stable" in str(err.value)
    assert rec.calls == [] and set(versions(rec).values()) == set(v1.values())
    pulled = template_store.settings.image_dir
    assert sorted(pulled.glob(f"*{v2['persistence']}*")) == []


def test_apply_refuses_a_revoked_channel_target(
    fleet, template_store: TemplateStore, tmp_path: Path
) -> None:
    """apply (and its dry run) with a revoked target: refused, no VM created or changed."""
    path, conns, v1, v2 = fleet
    revoke(template_store, v2["persistence"])
    rec = Recorder(path, conns)
    before = sorted(p.name for p in tmp_path.glob("hv-*/vms/*/os-*.qcow2"))
    for dry_run in (True, False):
        with pytest.raises(RevokedError, match=f"persistence {v2['persistence']} is revoked"):
            commands.apply(path, dry_run=dry_run, conns=conns)
    assert set(versions(rec).values()) == set(v1.values())
    assert sorted(p.name for p in tmp_path.glob("hv-*/vms/*/os-*.qcow2")) == before


def test_status_marks_vms_on_a_revoked_version(fleet, template_store: TemplateStore) -> None:
    """The running persistence version is revoked: its three VMs are marked, with the reason;
    the workers are not."""
    path, conns, v1, _ = fleet
    revoke(template_store, v1["persistence"])
    text = commands.status(path, conns=conns)
    marked = sorted(ln.split()[1] for ln in text.splitlines() if " REVOKED " in ln)
    assert marked == ["pers-ms-01", "pers-ms-02", "pers-ms-03"]
    assert "VMs on a revoked template (promote another version, then fleet.rollout):" in text
    assert f"on {v1['persistence']}: {REASON}" in text


def test_metrics_count_vms_on_a_revoked_version(
    fleet, template_store: TemplateStore, tmp_path: Path
) -> None:
    """fleet.metrics counts the three persistence VMs on the revoked version, no worker."""
    path, conns, v1, _ = fleet
    revoke(template_store, v1["persistence"])
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    commands.metrics(path, metrics, conns=conns)
    prom = metrics / "imagefactory_fleet_test.prom"
    promtool_check_metrics(prom)
    got = samples(prom)
    assert got['imagefactory_fleet_vms_revoked{fleet="test",family="persistence"}'] == 3
    assert got['imagefactory_fleet_vms_revoked{fleet="test",family="workers"}'] == 0
