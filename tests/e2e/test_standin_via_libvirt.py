"""The hypervisor path end to end: the sealed stand-in image published and pulled, one role
VM of a three-node cluster created by fleet.apply through a real libvirtd (its own loopback-only
network namespace, TCG), App-Core configured from the SMBIOS strings; destroy keeps its data.
The real host uses `storage: pool`, the path of remote hypervisors: the template is uploaded
over the libvirt connection and every disk is a volume the daemon makes.

Runs after test_standin_pipeline.py (same workspace, so the image is built once per session).
The other two cluster members sit on simulated hypervisors (libvirt's test driver): the real
host boots one VM, its peers list still names all three.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagefactory import commands
from imagefactory.fleet import commands as fleet
from imagefactory.fleet.apply import live_fleet_metadata
from imagefactory.fleet.config import load_fleet
from imagefactory.fleet.hypervisor import Connections, lookup, stop
from imagefactory.fleet.nodes import plan_fleet
from imagefactory.store import api
from imagefactory.store.settings import StoreSettings
from tests.fleetkit import group, simulated_host, write_fleet
from tests.libvirtd import Libvirtd
from tests.libvirtlab import republish, show
from tests.prereq import require_tool
from tests.storekit import make_signing_keys

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
SSH_PORT = 22220
BOOT_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def lab(
    workspace: Path, libvirtd: Libvirtd, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, str, Connections]]:
    """The stand-in image on the `stable` channel of a store, and a fleet file whose cluster
    has one node on the real libvirtd; yields (fleet file, that node, connections)."""
    require_tool("ssh")
    work = tmp_path_factory.mktemp("fleet")
    image = commands.build(
        workspace / "standin.yaml", "standin-alpha", workspace / "artifacts"
    ).image
    keys = make_signing_keys(work / "keys")
    settings = StoreSettings(
        kind="fs",
        path=work / "store",
        allowed_signers=keys.allowed_signers,
        image_dir=work / "pulled",
        signing_key=keys.private_key,
    )
    # Verification is the pipeline tests' business; this one needs the published image.
    api.publish(settings, image.parent, "stable", allow_unverified=True, show_progress=False)
    hosts = {
        "lab": {
            "uri": libvirtd.uri,
            "storage_dir": str(work / "lab"),
            "storage": "pool",
            "capacity": {"vcpu": 2, "memory_gib": 4, "storage_gb": 20},
            "network": {"user_ssh_port_base": SSH_PORT},
        },
        **{
            name: {
                "uri": simulated_host(work, name),
                "storage_dir": str(work / name),
                "capacity": {"vcpu": 2, "memory_gib": 4, "storage_gb": 20},
                "network": {"bridge": "br-fleet"},
            }
            for name in ("sim-1", "sim-2")
        },
    }
    # One vCPU: the stand-in's rare TCG boot stalls were seen with two.
    path = write_fleet(
        work,
        hosts,
        {
            "selftest": group(
                "SELFTEST",
                "standin-alpha",
                3,
                "cluster",
                "selftest-e2e",
                ("DATA_DB", 1),
                vcpu=1,
                memory_gib=1,
                os_disk_gb=3,
            )
        },
        network={
            "subnet": "10.0.2.0/24",
            "gateway": "10.0.2.2",
            "dns": ["10.0.2.3"],
            "first_host": 16,
        },
        store={
            "kind": "fs",
            "path": str(settings.path),
            "allowed_signers": str(keys.allowed_signers),
            "image_dir": str(work / "pulled"),
        },
    )
    plan = plan_fleet(load_fleet(path))
    node = plan.on_host("lab")[0].name
    conns = Connections()
    yield path, node, conns
    conns.close()


def guest(
    libvirtd: Libvirtd, fleet_file: Path, command: str, port: int = SSH_PORT
) -> subprocess.CompletedProcess[str]:
    key = fleet_file.parent / "ops_ed25519"
    argv = [
        "ssh",
        "-i",
        str(key),
        "-p",
        str(port),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "ops@127.0.0.1",
        command,
    ]
    return subprocess.run(libvirtd.in_netns(argv), capture_output=True, text=True, timeout=120)


def wait_configured(
    libvirtd: Libvirtd, fleet_file: Path, node: str, port: int = SSH_PORT
) -> tuple[float, dict]:
    """Seconds from now until `appcore status` exits 0 over SSH, and its JSON."""
    started = time.monotonic()
    while time.monotonic() - started < BOOT_TIMEOUT_S:
        result = guest(libvirtd, fleet_file, "sudo -n appcore status --json", port)
        if result.returncode == 0:
            return time.monotonic() - started, json.loads(result.stdout)["state"]
        time.sleep(5)
    console = next(
        (
            d / "lab" / f"{node}.console.log"
            for d in (fleet_file.parent, fleet_file.parent.parent)
            if (d / "lab" / f"{node}.console.log").exists()
        ),
        None,
    )
    tail = console.read_text(errors="replace")[-3000:] if console else "(no console log)"
    pytest.fail(
        f"{node} not configured within {BOOT_TIMEOUT_S} s; console:\n{tail}\n"
        f"qemu log:\n{libvirtd.qemu_log(node)[-2000:]}"
    )


def test_apply_boots_a_configured_role_vm(libvirtd: Libvirtd, lab, capsys) -> None:
    """fleet.apply --host=lab: the VM boots under TCG and App-Core reports the role, the
    hostname, the cluster's three peers in the rendered config and the mounted data disk."""
    path, node, conns = lab
    report = fleet.apply(path, host="lab", conns=conns)
    assert report.actions[node].startswith("created and started")
    took, status = wait_configured(libvirtd, path, node)
    show(capsys, f"apply -> {node} configured (boot to configured): {took:.0f} s")
    assert (status["status"], status["role"], status["source"]) == (
        "configured",
        "SELFTEST",
        "smbios",
    )
    assert guest(libvirtd, path, "hostname").stdout.strip() == node
    plan = plan_fleet(load_fleet(path))
    peers = ",".join(str(p) for p in plan.nodes[node].peers)
    conf = guest(libvirtd, path, "sudo -n cat /data/db/conf/selftest.conf").stdout
    assert f"peers={peers}\n" in conf and len(peers.split(",")) == 3
    assert f"ip={plan.nodes[node].ip}\n" in conf and f"hostname={node}\n" in conf
    mount = guest(libvirtd, path, "findmnt -n -o SOURCE,FSTYPE /data/db").stdout.split()
    assert mount[1] == "ext4" and mount[0].startswith("/dev/vd")
    marker = guest(libvirtd, path, "echo fleet-e2e | sudo -n tee /data/db/marker && sync")
    assert marker.returncode == 0


def test_second_apply_and_status_see_no_change(lab) -> None:
    """Applying again changes nothing; status shows the VM running with no drift."""
    path, node, conns = lab
    assert fleet.apply(path, host="lab", conns=conns).actions == {node: "unchanged"}
    line = next(ln for ln in fleet.status(path, host="lab", conns=conns).splitlines() if node in ln)
    assert "running" in line and line.rstrip().endswith("none")


def test_destroy_keeps_data_for_the_next_apply(libvirtd: Libvirtd, lab, capsys) -> None:
    """fleet.destroy --node, then apply: a new VM on a fresh overlay finds the marker written
    to its data disk before."""
    path, node, conns = lab
    fleet.destroy(path, node=node, conns=conns)
    disk = path.parent / "lab" / f"{node}.data-data_db.raw"
    assert disk.exists() and not list(disk.parent.glob(f"{node}.os-*.qcow2"))
    assert fleet.apply(path, host="lab", conns=conns).actions[node].startswith("created")
    took, status = wait_configured(libvirtd, path, node)
    show(capsys, f"re-created {node} configured on its kept data disk: {took:.0f} s")
    assert status["role"] == "SELFTEST"
    assert guest(libvirtd, path, "cat /data/db/marker").stdout == "fleet-e2e\n"


# -- rollout: the same VM path, moved onto newer templates -----------------------------------

ROLL_PORT = SSH_PORT + 10


@pytest.fixture(scope="module")
def rolling(workspace: Path, libvirtd: Libvirtd, lab) -> Iterator[dict]:
    """A second fleet file (same store and host) with one stand-alone SELFTEST VM, applied
    and configured, a marker written to its data disk."""
    fleet1, node1, conns = lab
    work = fleet1.parent
    keys = work / "keys"
    settings = StoreSettings(
        kind="fs",
        path=work / "store",
        allowed_signers=keys / "allowed_signers",
        image_dir=work / "pulled",
        signing_key=keys / "signing_key",
    )
    hv = {
        "uri": libvirtd.uri,
        "storage_dir": str(work / "lab"),
        "storage": "pool",
        "capacity": {"vcpu": 2, "memory_gib": 4, "storage_gb": 20},
        "network": {"user_ssh_port_base": ROLL_PORT},
    }
    path = write_fleet(
        work / "rollout",
        {"lab": hv},
        {
            "rolling": group(
                "SELFTEST",
                "standin-alpha",
                1,
                "independent",
                "rolling",
                ("DATA_DB", 1),
                vcpu=1,
                memory_gib=1,
                os_disk_gb=3,
            )
        },
        name="rolling",
        network={"subnet": "10.0.2.0/24", "gateway": "10.0.2.2", "first_host": 16},
        store={
            "kind": "fs",
            "path": str(settings.path),
            "allowed_signers": str(settings.allowed_signers),
            "image_dir": str(settings.image_dir),
        },
        rollout={"ssh_identity": "ops_ed25519", "health_timeout_s": BOOT_TIMEOUT_S},
    )
    # The first fleet's VM is stopped, not removed: its overlay still holds the old template.
    plan1 = plan_fleet(load_fleet(fleet1))
    dom = lookup(conns.get(plan1.fleet.hypervisors["lab"]), node1)
    if dom is not None:
        stop(dom, 120, print)
    assert fleet.apply(path, conns=conns).actions["rolling-01"].startswith("created")
    wait_configured(libvirtd, path, "rolling-01", ROLL_PORT)
    assert (
        guest(
            libvirtd, path, "echo rolled | sudo -n tee /data/db/marker && sync", ROLL_PORT
        ).returncode
        == 0
    )
    yield {
        "path": path,
        "conns": conns,
        "settings": settings,
        "fleet1": fleet1,
        "node1": node1,
        "sealed": workspace / "artifacts" / "images",
    }


def run_rollout(libvirtd: Libvirtd, path: Path) -> subprocess.CompletedProcess[str]:
    """`invoke fleet.rollout` as an operator runs it, inside the daemon's network namespace
    (where the VMs' SSH forwards listen)."""
    argv = [sys.executable, "-m", "invoke", "fleet.rollout", f"--fleet={path}"]
    return subprocess.run(
        libvirtd.in_netns(argv),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=BOOT_TIMEOUT_S * 3,
    )


def running_version(rolling: dict) -> str:
    plan = plan_fleet(load_fleet(rolling["path"]))
    dom = lookup(rolling["conns"].get(plan.fleet.hypervisors["lab"]), "rolling-01")
    return str(live_fleet_metadata(dom)["version"])


def test_rollout_moves_the_vm_and_keeps_its_data(libvirtd: Libvirtd, rolling: dict, capsys) -> None:
    """A new version on stable: fleet.rollout stops the VM, boots it on a new overlay with
    the same data disk, passes the health gate over SSH; the marker is still there."""
    old = running_version(rolling)
    new = republish(
        rolling["settings"], rolling["sealed"] / "standin-alpha", rolling["path"].parent, 1
    )
    started = time.monotonic()
    result = run_rollout(libvirtd, rolling["path"])
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    show(
        capsys,
        f"rollout of one node ({old} -> {new}), shutdown to healthy: {took:.0f} s\n{result.stdout}",
    )
    assert "rolling-01: healthy after" in result.stdout
    assert running_version(rolling) == new
    assert guest(libvirtd, rolling["path"], "cat /data/db/marker", ROLL_PORT).stdout == "rolled\n"


def test_gc_removes_the_old_template_once_no_overlay_uses_it(rolling: dict) -> None:
    """The first fleet's stopped VM still stands on the first template: gc keeps it; once
    that VM is destroyed, gc --apply removes it, and never the running VM's template."""
    conns, lab_dir = rolling["conns"], rolling["path"].parent.parent / "lab"
    templates = sorted(p.name for p in lab_dir.glob("tpl-*.qcow2"))
    assert len(templates) == 2
    assert fleet.gc(rolling["path"], apply=True, conns=conns) == "0 template(s) removed"
    fleet.destroy(rolling["fleet1"], node=rolling["node1"], conns=conns)
    assert fleet.gc(rolling["path"], apply=True, conns=conns) == "1 template(s) removed"
    left = sorted(p.name for p in lab_dir.glob("tpl-*.qcow2"))
    assert left == [f"tpl-standin-alpha-{running_version(rolling)}.qcow2"]


def test_a_version_that_fails_its_health_gate_is_rolled_back(
    libvirtd: Libvirtd, workspace: Path, rolling: dict, capsys
) -> None:
    """A template whose App-Core refuses the role (the workers stand-in relabelled): the
    health gate fails, the VM goes back to its previous overlay, healthy, data intact."""
    before = running_version(rolling)
    commands.build(workspace / "standin.yaml", "standin-beta", workspace / "artifacts")
    broken = republish(
        rolling["settings"], rolling["sealed"] / "standin-beta", rolling["path"].parent, 2
    )
    started = time.monotonic()
    result = run_rollout(libvirtd, rolling["path"])
    show(
        capsys,
        f"failed rollout and rollback: {time.monotonic() - started:.0f} s\n"
        f"{result.stdout}{result.stderr}",
    )
    assert result.returncode != 0
    assert "rolling-01: FAILED its health gate" in result.stdout
    assert f"rolling-01: back on {before} (healthy)" in result.stdout
    assert "rollout stopped in cluster(s) rolling" in result.stderr
    assert running_version(rolling) == before != broken
    assert guest(libvirtd, rolling["path"], "cat /data/db/marker", ROLL_PORT).stdout == "rolled\n"
