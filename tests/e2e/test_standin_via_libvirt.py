"""The hypervisor path end to end: the sealed stand-in image published and pulled, one role
VM of a three-node cluster created by fleet.apply through a real libvirtd (its own loopback-only
network namespace, TCG), App-Core configured from the SMBIOS strings; destroy keeps its data;
the gate trusts only the host keys the VM printed on its console. Rollout, gc and the rollback
of a broken version run in test_standin_via_libvirt_galera.py, on a real three-VM cluster.
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
from imagefactory.fleet.config import load_fleet
from imagefactory.fleet.hostkeys import parse_blocks
from imagefactory.fleet.hypervisor import Connections, lookup
from imagefactory.fleet.nodes import plan_fleet
from imagefactory.store import api
from imagefactory.store.settings import StoreSettings
from tests.fleetkit import group, simulated_host, write_fleet
from tests.libvirtd import Libvirtd
from tests.libvirtlab import show
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
        catalogue="test",  # SELFTEST/STANDIN_GALERA are test-only roles
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
    fleet_ = load_fleet(path)
    plan = plan_fleet(fleet_)
    node = plan.on_host("lab")[0].name
    conns = Connections()
    yield path, node, conns
    # Its VM must not go on using a CPU and a GiB while the next modules boot theirs.
    dom = lookup(conns.get(fleet_.hypervisors["lab"]), node)
    if dom is not None and dom.isActive():
        dom.destroy()
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


def probe_in_netns(libvirtd: Libvirtd, path: Path, node: str) -> dict:
    """The rollout gate's own look at `node` (fleet.health.probe, known host keys and all),
    run inside the daemon's network namespace; its Health as a dict."""
    code = (
        "import dataclasses, json, sys; from pathlib import Path\n"
        "from imagefactory.fleet.config import load_fleet\n"
        "from imagefactory.fleet.health import probe\n"
        "from imagefactory.fleet.nodes import plan_fleet\n"
        "fleet = load_fleet(Path(sys.argv[1]))\n"
        "health = probe(fleet, plan_fleet(fleet).nodes[sys.argv[2]], Path(sys.argv[3]), 30.0)\n"
        "print(json.dumps(dataclasses.asdict(health)))\n"
    )
    argv = [sys.executable, "-c", code, str(path), node, str(path.parent / "ops_ed25519")]
    result = subprocess.run(
        libvirtd.in_netns(argv), cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return dict(json.loads(result.stdout))


def test_a_swapped_host_key_is_refused(libvirtd: Libvirtd, lab) -> None:
    """The gate trusts the key the VM printed on its console at first boot; after the VM's
    ed25519 host key is replaced (same overlay, no reboot) the gate refuses it, naming the
    node and both fingerprints."""
    path, node, _ = lab
    assert probe_in_netns(libvirtd, path, node)["ok"] is True
    console = (path.parent / "lab" / f"{node}.console.log").read_text(errors="replace")
    assert "-----BEGIN SSH HOST KEY FINGERPRINTS-----" in console
    shown = parse_blocks(console)[-1][1]["ssh-ed25519"]
    swap = guest(
        libvirtd,
        path,
        "sudo -n sh -c 'rm -f /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub"
        ' && ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key'
        " && ssh-keygen -l -E sha256 -f /etc/ssh/ssh_host_ed25519_key.pub"
        " && systemctl restart ssh'",
    )
    assert swap.returncode == 0, swap.stderr
    new_fp = swap.stdout.split()[1]
    health = probe_in_netns(libvirtd, path, node)
    assert health["ok"] is False
    assert f"{node}: host key ssh-ed25519 {new_fp} offered at" in health["detail"]
    assert new_fp != shown
    # the learned set is listed sorted by type: ecdsa may come before ed25519
    assert f"does not match {shown} learned from its console (" in health["detail"]


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


def test_the_new_overlay_learns_its_keys_afresh(libvirtd: Libvirtd, lab) -> None:
    """After destroy and apply (a new overlay, new host keys) the gate trusts the new keys."""
    path, node, _ = lab
    assert probe_in_netns(libvirtd, path, node)["ok"] is True
