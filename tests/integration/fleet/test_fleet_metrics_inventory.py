"""fleet.metrics and fleet.rollout's metrics on simulated hypervisors (libvirt's test driver),
checked by promtool; fleet.inventory read back by the real ansible-inventory."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from imagefactory.fleet import commands
from imagefactory.fleet.hypervisor import FleetError
from tests.clikit import run_task
from tests.fleetkit import group, three_simulated_hosts, write_fleet
from tests.metricskit import promtool_check_metrics, samples
from tests.prereq import require_tool
from tests.rolloutkit import SMALL, Recorder

pytestmark = pytest.mark.integration


def test_fleet_metrics_count_versions_and_drift(fleet, tmp_path: Path) -> None:
    """Applied on version 1 while the channel has version 2: every VM counted on version 1,
    all of them drifting; after the rollout, none."""
    path, conns, v1, v2 = fleet
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    said = commands.metrics(path, metrics, conns=conns)
    prom = metrics / "imagefactory_fleet_test.prom"
    assert said == f"7 VM(s) in {prom}"
    promtool_check_metrics(prom)
    got = samples(prom)
    p, w = v1["persistence"], v1["workers"]
    assert got[f'imagefactory_fleet_vms{{fleet="test",family="persistence",version="{p}"}}'] == 3
    assert got[f'imagefactory_fleet_vms{{fleet="test",family="workers",version="{w}"}}'] == 4
    drift = 'imagefactory_fleet_version_drift_vms{fleet="test",family="workers"}'
    assert got[drift] == 4
    assert got['imagefactory_fleet_vms_missing{fleet="test",family="persistence"}'] == 0
    commands.rollout(path, conns=conns, health=Recorder(path, conns))
    commands.metrics(path, metrics, conns=conns)
    after = samples(prom)
    assert after[drift] == 0
    assert (
        after[f'imagefactory_fleet_vms{{fleet="test",family="workers",version="{v2["workers"]}"}}']
        == 4
    )
    assert not [k for k in after if v1["workers"] in k]


def test_fleet_metrics_need_the_setting(fleet) -> None:
    """Without a metrics directory, fleet.metrics says which setting to set."""
    path, conns, _, _ = fleet
    with pytest.raises(FleetError, match=r"no metrics directory: set factory.metrics_dir"):
        commands.metrics(path, None, conns=conns)


def test_rollout_metrics_per_cluster(fleet, tmp_path: Path) -> None:
    """A failed health gate stops ms-main: result 0, 1 of 3 done, no success time; wrk-app
    finished 4 of 4; a second, clean rollout gives ms-main 3 of 3 and a success time."""
    path, conns, _, _ = fleet
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    rec = Recorder(path, conns, fail={"pers-ms-02"})
    with pytest.raises(FleetError, match="rollout stopped"):
        commands.rollout(path, conns=conns, health=rec, metrics_dir=metrics)
    prom = metrics / "imagefactory_rollout_test.prom"
    promtool_check_metrics(prom)
    got = samples(prom)
    ms, wrk = 'fleet="test",cluster="ms-main"', 'fleet="test",cluster="wrk-app"'
    assert got[f"imagefactory_rollout_last_result{{{ms}}}"] == 0
    assert got[f"imagefactory_rollout_nodes_done{{{ms}}}"] == 1
    assert got[f"imagefactory_rollout_nodes{{{ms}}}"] == 3
    assert got[f"imagefactory_rollout_last_success_timestamp_seconds{{{ms}}}"] == 0
    assert got[f"imagefactory_rollout_last_result{{{wrk}}}"] == 1
    assert got[f"imagefactory_rollout_nodes_done{{{wrk}}}"] == 4
    commands.rollout(path, conns=conns, health=Recorder(path, conns), metrics_dir=metrics)
    again = samples(prom)
    assert again[f"imagefactory_rollout_last_result{{{ms}}}"] == 1
    assert again[f"imagefactory_rollout_nodes_done{{{ms}}}"] == 3
    assert again[f"imagefactory_rollout_last_success_timestamp_seconds{{{ms}}}"] > 1.7e9


def inventory_fleet(directory: Path) -> Path:
    hosts = three_simulated_hosts(directory)
    return write_fleet(
        directory,
        hosts,
        {
            "pers-ms": group(
                "REDPANDA", "persistence", 3, "cluster", "ms-main", ("DATA_MS", 2), **SMALL
            ),
            "wrk-app": group("APP", "workers", 2, "independent", "wrk-app", **SMALL),
        },
    )


def test_the_inventory_reads_back_through_ansible_inventory(tmp_path: Path) -> None:
    """`invoke fleet.inventory` as an inventory script: ansible-inventory --list gives back
    the groups per role, cluster, family and hypervisor, and a host's variables."""
    ansible_inventory = require_tool("ansible-inventory")
    path = inventory_fleet(tmp_path)
    done = run_task("fleet.inventory", f"--fleet={path}")
    assert done.returncode == 0, done.stderr
    printed = tmp_path / "inventory.json"
    printed.write_text(done.stdout)
    script = tmp_path / "inventory.sh"
    script.write_text(f"#!/bin/sh\nexec cat {printed}\n")
    script.chmod(0o755)
    listed = subprocess.run(
        [ansible_inventory, "-i", str(script), "--list"],
        capture_output=True,
        text=True,
        env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "true", "PATH": "/usr/bin:/bin"},
    )
    assert listed.returncode == 0, listed.stderr
    inv = json.loads(listed.stdout)
    assert inv["role_redpanda"]["hosts"] == ["pers-ms-01", "pers-ms-02", "pers-ms-03"]
    assert inv["cluster_wrk_app"]["hosts"] == ["wrk-app-01", "wrk-app-02"]
    assert inv["family_workers"]["hosts"] == ["wrk-app-01", "wrk-app-02"]
    assert sorted(inv["by_hypervisor"]["children"]) == [
        "hypervisor_hv_a",
        "hypervisor_hv_b",
        "hypervisor_hv_c",
    ]
    assert sorted(inv["fleet_test"]["children"]) == [
        "by_cluster",
        "by_family",
        "by_group",
        "by_hypervisor",
        "by_role",
    ]
    plan = json.loads(commands.plan(path, as_json=True))
    node = plan["nodes"]["pers-ms-02"]
    assert inv["_meta"]["hostvars"]["pers-ms-02"] == {
        "ansible_host": node["ip"],
        "role": "REDPANDA",
        "cluster": "ms-main",
        "group": "pers-ms",
        "family": "persistence",
        "hypervisor": node["host"],
        "fleet": "test",
    }
    assert "[WARNING]" not in listed.stderr, listed.stderr


def test_the_metrics_task_takes_its_directory_from_the_invoke_setting(tmp_path: Path) -> None:
    """`invoke fleet.metrics` with INVOKE_FACTORY_METRICS_DIR: a fresh test-driver host has
    none of the VMs, so all five are missing; without the setting it refuses, exit 1."""
    path = inventory_fleet(tmp_path)
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    refused = run_task("fleet.metrics", f"--fleet={path}")
    assert refused.returncode == 1 and "set factory.metrics_dir" in refused.stderr
    assert list(metrics.iterdir()) == []
    done = run_task(
        "fleet.metrics", f"--fleet={path}", env={"INVOKE_FACTORY_METRICS_DIR": str(metrics)}
    )
    assert done.returncode == 0, done.stderr
    prom = metrics / "imagefactory_fleet_test.prom"
    promtool_check_metrics(prom)
    got = samples(prom)
    assert got['imagefactory_fleet_vms_missing{fleet="test",family="persistence"}'] == 3
    assert got['imagefactory_fleet_vms_missing{fleet="test",family="workers"}'] == 2
