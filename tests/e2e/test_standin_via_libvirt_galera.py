"""A real Galera cluster of three stand-in VMs on a real libvirtd (TCG), through the fleet:
fleet.apply creates and forms it; fleet.rollout moves every member onto a new version while a
writer commits numbered rows and every member is sampled each second; all three lose power and
fleet.recover brings the cluster back from the member that committed most; a version whose
App-Core cannot configure the role is rolled back with the cluster whole.

The VMs share a bridge in libvirtd's own network namespace, with dnsmasq giving each VM its
planned address (tests/libvirtlab.py). Three hypervisor entries name the one real daemon, so
placement puts one member on each, as quorum requires. Runs after test_standin_via_libvirt.py
(same session image and daemon).

In the default run (CI); alone: `.venv/bin/pytest -m cluster_e2e tests/e2e` (README, Tests).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagefactory import commands
from imagefactory.fleet import commands as fleet
from imagefactory.fleet.apply import live_fleet_metadata
from imagefactory.fleet.config import load_fleet
from imagefactory.fleet.hypervisor import Connections, lookup
from imagefactory.fleet.nodes import plan_fleet
from tests import libvirtlab as lab
from tests.fleetkit import group, write_fleet
from tests.libvirtd import Libvirtd
from tests.libvirtlab import published_standin, republish, show
from tests.prereq import require_tool, require_tools

pytestmark = [pytest.mark.e2e, pytest.mark.cluster_e2e]
REPO = Path(__file__).resolve().parents[2]
BRIDGE = "br-galera"
SUBNET = "10.88.0"
CLUSTER = "standin-galera"
NODES = ("standin-db-01", "standin-db-02", "standin-db-03")
TIMEOUT_S = 900
WRITER_SECRET = "e2e-writer-not-a-secret"  # a throwaway cluster inside a test namespace


def in_ns(libvirtd: Libvirtd, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return lab.in_ns(libvirtd, *argv, timeout=timeout)


def invoke(libvirtd: Libvirtd, path: Path, *task: str) -> subprocess.CompletedProcess[str]:
    return lab.invoke_in_ns(libvirtd, path, *task, timeout=TIMEOUT_S * 2)


def ssh(libvirtd: Libvirtd, path: Path, ip: str, command: str) -> subprocess.CompletedProcess[str]:
    return lab.ssh_in_ns(libvirtd, path.parent / "ops_ed25519", ip, command)


@pytest.fixture(scope="module")
def cluster(
    workspace: Path, libvirtd: Libvirtd, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Three STANDIN_GALERA members on one hypervisor entry each, the image on `stable`."""
    require_tools("ssh", "dnsmasq", "mariadb", "ip")
    work = tmp_path_factory.mktemp("galera")
    sealed = workspace / "artifacts" / "images"
    settings = published_standin(workspace, work)
    # One daemon, three hypervisor entries: the fleet refuses one URI twice (a typo would put
    # a "spread" cluster on one host), so lab-2 and lab-3 reach its socket through a link.
    uris = {1: libvirtd.uri}
    for i in (2, 3):
        link = work / f"lab-{i}.sock"
        link.symlink_to(libvirtd.base / "run" / "libvirt-sock")
        uris[i] = f"qemu+unix:///system?socket={link}"
    hosts = {
        f"lab-{i}": {
            "uri": uris[i],
            "storage_dir": str(work / f"lab-{i}"),
            "storage": "pool",
            "capacity": {"vcpu": 2, "memory_gib": 4, "storage_gb": 20},
            "network": {"bridge": BRIDGE},
        }
        for i in (1, 2, 3)
    }
    path = write_fleet(
        work,
        hosts,
        {
            "standin-db": group(
                "STANDIN_GALERA",
                "standin-alpha",
                3,
                "cluster",
                CLUSTER,
                ("DATA_DB", 1),
                vcpu=1,
                memory_gib=1,
                os_disk_gb=3,
            )
        },
        name="galera",
        catalogue="test",  # SELFTEST/STANDIN_GALERA are test-only roles
        network={
            "subnet": f"{SUBNET}.0/24",
            "gateway": f"{SUBNET}.1",
            "dns": [f"{SUBNET}.1"],
            "first_host": 16,
        },
        store={
            "kind": "fs",
            "path": str(settings.path),
            "allowed_signers": str(settings.allowed_signers),
            "image_dir": str(work / "pulled"),
        },
        rollout={"ssh_identity": "ops_ed25519", "health_timeout_s": TIMEOUT_S},
    )
    plan = plan_fleet(load_fleet(path))
    assert sorted(plan.nodes) == list(NODES)
    assert len({plan.nodes[n].host for n in NODES}) == 3
    dnsmasq = lab.start_network(libvirtd, work, plan, BRIDGE, SUBNET)
    conns = Connections()
    yield {
        "path": path,
        "plan": plan,
        "ips": [str(plan.nodes[n].ip) for n in NODES],
        "settings": settings,
        "sealed": sealed,
        "conns": conns,
        "work": work,
    }
    for name in NODES:
        dom = lookup(conns.get(plan.fleet.hypervisors[plan.nodes[name].host]), name)
        if dom is not None and dom.isActive():
            dom.destroy()
    conns.close()
    dnsmasq.terminate()
    dnsmasq.wait(timeout=10)


def ready_all(libvirtd: Libvirtd, c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`appcore ready --json` of every member, by node name."""
    out = {}
    for name, ip in zip(NODES, c["ips"], strict=True):
        done = ssh(libvirtd, c["path"], ip, "sudo -n appcore ready --json")
        out[name] = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    return out


def member_sql(libvirtd: Libvirtd, c: dict[str, Any], ip: str, query: str) -> str:
    done = ssh(libvirtd, c["path"], ip, f'sudo -n mariadb -N -B -e "{query}"')
    assert done.returncode == 0, f"{ip}: {query}: {done.stderr}"
    return done.stdout


def versions(c: dict[str, Any]) -> dict[str, str]:
    plan = c["plan"]
    out = {}
    for name in NODES:
        dom = lookup(c["conns"].get(plan.fleet.hypervisors[plan.nodes[name].host]), name)
        out[name] = str(live_fleet_metadata(dom)["version"])
    return out


class Load:
    """tests/galeraload.py in the namespace: a writer and a 1 s sampler of every member."""

    def __init__(self, libvirtd: Libvirtd, c: dict[str, Any], name: str) -> None:
        self.out = c["work"] / name
        self.out.mkdir()
        argv = [
            sys.executable,
            "-m",
            "tests.galeraload",
            "--hosts",
            ",".join(c["ips"]),
            "--out",
            str(self.out),
        ]
        env = dict(os.environ, MYSQL_PWD=WRITER_SECRET)
        self.proc = subprocess.Popen(libvirtd.in_netns(argv), cwd=REPO, env=env)

    def stop(self) -> tuple[list[int], list[dict[str, Any]]]:
        (self.out / "stop").touch()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        acked = [int(x) for x in (self.out / "acked").read_text().split()]
        samples = [json.loads(x) for x in (self.out / "samples").read_text().splitlines()]
        return acked, samples


def quorum(sample: dict[str, Any]) -> bool:
    """At least two members in one Primary component taking queries, one of them Synced.
    (MariaDB's donor of an incremental transfer shows Donor/Desynced while its SST script
    runs the bypass step, still taking writes: with a third member restarting, "two Synced"
    cannot hold on MariaDB at every instant.)"""
    return (
        len(sample["primary_ready"]) >= 2
        and len(sample["uuids"]) == 1
        and len(sample["synced_primary"]) >= 1
    )


def rows_everywhere(libvirtd: Libvirtd, c: dict[str, Any]) -> dict[str, set[int]]:
    return {
        name: {int(x) for x in member_sql(libvirtd, c, ip, "SELECT id FROM t.r").split()}
        for name, ip in zip(NODES, c["ips"], strict=True)
    }


def test_apply_forms_the_cluster(libvirtd: Libvirtd, cluster: dict[str, Any], capsys) -> None:
    """fleet.apply creates three members and forms one cluster from one bootstrap: every
    member Primary, Synced, size 3."""
    started = time.monotonic()
    done = invoke(libvirtd, cluster["path"], "fleet.apply")
    show(
        capsys, f"apply + formation of 3 members: {time.monotonic() - started:.0f} s\n{done.stdout}"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"cluster {CLUSTER}: forming" in done.stdout
    assert done.stdout.count("bootstrap ") == 1
    ready = ready_all(libvirtd, cluster)
    assert {n: (r.get("ready"), r.get("cluster_size")) for n, r in ready.items()} == dict.fromkeys(
        NODES, (True, "3")
    )
    first = cluster["ips"][0]
    member_sql(
        libvirtd,
        cluster,
        first,
        "CREATE DATABASE t; CREATE TABLE t.r (id INT PRIMARY KEY) ENGINE=InnoDB; "
        f"CREATE USER 'writer'@'%' IDENTIFIED BY '{WRITER_SECRET}'; "
        "GRANT INSERT, SELECT ON t.* TO 'writer'@'%'",
    )


def test_rollout_under_writes_keeps_every_row_and_quorum(
    libvirtd: Libvirtd, cluster: dict[str, Any], capsys
) -> None:
    """Every member moves onto a new version while a writer commits: no acknowledged row is
    lost, and at every 1 s sample at least two members are in one Primary component taking
    queries, one of them Synced."""
    before = versions(cluster)
    new = republish(cluster["settings"], cluster["sealed"] / "standin-alpha", cluster["work"], 1)
    load = Load(libvirtd, cluster, "rollout-load")
    time.sleep(5)
    started = time.monotonic()
    done = invoke(libvirtd, cluster["path"], "fleet.rollout")
    took = time.monotonic() - started
    time.sleep(5)
    acked, samples = load.stop()
    show(
        capsys,
        f"rollout of 3 members under writes: {took:.0f} s, {len(acked)} rows acked, "
        f"{len(samples)} samples\n{done.stdout}",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert versions(cluster) == dict.fromkeys(NODES, new) != before
    short = [s for s in samples if not quorum(s)]
    assert short == [], f"{len(short)} samples without quorum: {short[:3]}"
    desynced = sum(1 for s in samples if len(s["synced_primary"]) < 2)
    show(capsys, f"samples with an IST donor desynced (MariaDB's bypass step): {desynced}")
    assert len(acked) > 20
    for name, got in rows_everywhere(libvirtd, cluster).items():
        assert set(acked) <= got, f"{name} lacks {sorted(set(acked) - got)[:10]}"


def test_gc_removes_the_old_templates_once_no_overlay_uses_them(cluster: dict[str, Any]) -> None:
    """After the rollout no overlay stands on the first template: gc --apply removes it from
    each hypervisor's storage, and never the running one."""
    removed = fleet.gc(cluster["path"], apply=True, conns=cluster["conns"])
    assert removed == "3 template(s) removed"
    running = set(versions(cluster).values())
    left = {p.name for i in (1, 2, 3) for p in (cluster["work"] / f"lab-{i}").glob("tpl-*.qcow2")}
    assert left == {f"tpl-standin-alpha-{v}.qcow2" for v in running}


def test_power_cut_recovers_from_the_member_that_committed_most(
    libvirtd: Libvirtd, cluster: dict[str, Any], capsys
) -> None:
    """Writes go on while members lose power one after another, the last one alone; after
    fleet.apply starts them again, fleet.recover bootstraps the last one (highest seqno) and
    no acknowledged row is lost."""
    plan, conns = cluster["plan"], cluster["conns"]
    doms = {n: lookup(conns.get(plan.fleet.hypervisors[plan.nodes[n].host]), n) for n in NODES}
    load = Load(libvirtd, cluster, "outage-load")
    time.sleep(5)
    doms[NODES[0]].destroy()  # a power cut: no clean shutdown
    time.sleep(12)  # Galera's suspect timeout (5 s) evicts 01: 02 and 03 commit on
    doms[NODES[1]].destroy()  # 03 is alone: non-Primary, so writes stop
    time.sleep(5)
    doms[NODES[2]].destroy()
    acked, _ = load.stop()
    started = time.monotonic()
    applied = invoke(libvirtd, cluster["path"], "fleet.apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert applied.stdout.count("started (was defined, not running)") == 3
    dry = invoke(libvirtd, cluster["path"], "fleet.recover", f"--cluster={CLUSTER}", "--dry-run")
    done = invoke(libvirtd, cluster["path"], "fleet.recover", f"--cluster={CLUSTER}")
    show(
        capsys,
        f"power cut of 3 members, start + recover: {time.monotonic() - started:.0f} s\n"
        f"{dry.stdout}{done.stdout}",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "bootstrap standin-db-02" in done.stdout or "bootstrap standin-db-03" in done.stdout
    assert "bootstrap standin-db-01" not in done.stdout
    ready = ready_all(libvirtd, cluster)
    assert all(r.get("ready") for r in ready.values()), ready
    for name, got in rows_everywhere(libvirtd, cluster).items():
        assert set(acked) <= got, f"{name} lacks {sorted(set(acked) - got)[:10]}"


def test_a_version_that_cannot_join_is_rolled_back_with_the_cluster_whole(
    libvirtd: Libvirtd, workspace: Path, cluster: dict[str, Any], capsys
) -> None:
    """The workers stand-in relabelled as standin-alpha: App-Core refuses the role, the first
    member fails its gate and goes back; the others never went down; all three ready."""
    require_tool("qemu-img")
    before = versions(cluster)
    commands.build(workspace / "standin.yaml", "standin-beta", workspace / "artifacts")
    broken = republish(cluster["settings"], cluster["sealed"] / "standin-beta", cluster["work"], 2)
    started = time.monotonic()
    done = invoke(libvirtd, cluster["path"], "fleet.rollout")
    show(
        capsys,
        f"broken version, rolled back: {time.monotonic() - started:.0f} s\n"
        f"{done.stdout}{done.stderr}",
    )
    assert done.returncode != 0
    assert done.stdout.count("FAILED its health gate") == 1
    assert f"rollout stopped in cluster(s) {CLUSTER}" in done.stderr
    assert versions(cluster) == before and broken not in before.values()
    ready = ready_all(libvirtd, cluster)
    assert {n: (r.get("ready"), r.get("cluster_size")) for n, r in ready.items()} == dict.fromkeys(
        NODES, (True, "3")
    )
