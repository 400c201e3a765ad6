"""Shared by the e2e modules on the real libvirtd: a new version of a sealed stand-in image
on `stable`, measured figures shown in the run's output, and the network of VMs that talk
to each other: a bridge made inside libvirtd's own network namespace (addresses that exist
only there), dnsmasq giving each VM the address the fleet placed it at, by MAC, and commands
run in that namespace (the fleet's tasks reach the VMs over SSH from there)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from imagefactory import commands
from imagefactory.fleet.nodes import FleetPlan
from imagefactory.report.sbom import MANIFEST_FIELD as SBOM_FIELD
from imagefactory.store import api
from imagefactory.store.settings import StoreSettings
from imagefactory.util.fsutil import sha256_file
from tests.libvirtd import Libvirtd
from tests.storekit import make_signing_keys

REPO = Path(__file__).resolve().parents[1]


def published_standin(workspace: Path, work: Path) -> StoreSettings:
    """The session's stand-in persistence image (built once per session, cached after)
    published on `stable` of a directory store in `work`; that store's settings."""
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
    # Verification is the pipeline tests' business; the fleet needs the published image.
    api.publish(settings, image.parent, "stable", allow_unverified=True, show_progress=False)
    return settings


def republish(
    settings: StoreSettings, sealed: Path, work: Path, hours: int, family: str = "standin-alpha"
) -> str:
    """`sealed` published again as a new version of `family` on stable: same guest, other
    bytes (qemu-img convert with another cluster size), `hours` later."""
    out = work / f"sealed-{hours}"
    out.mkdir()
    manifest = json.loads((sealed / "manifest.json").read_text())
    image = out / f"{family}.qcow2"
    subprocess.run(
        [
            "qemu-img",
            "convert",
            "-c",
            "-O",
            "qcow2",
            "-o",
            "cluster_size=131072,compression_type=zstd",
            str(sealed / manifest["image"]["file"]),
            str(image),
        ],
        check=True,
    )
    manifest["family"] = family
    # Other bytes: the sealed image's verification, scan and SBOM are not about them (and
    # their report files stay behind), so the new version is published unverified.
    for field in ("verification", "compliance", SBOM_FIELD):
        manifest.pop(field, None)
    manifest["image"].update(file=image.name, sha256=sha256_file(image), size=image.stat().st_size)
    finished = datetime.fromisoformat(manifest["build"]["finished"]) + timedelta(hours=hours)
    manifest["build"]["finished"] = finished.isoformat()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return api.publish(settings, out, "stable", allow_unverified=True, show_progress=False).version


def show(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """A measured figure, shown in the run's output even when the test passes."""
    with capsys.disabled():
        print(f"\n[fleet e2e] {line}")


def in_ns(libvirtd: Libvirtd, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        libvirtd.in_netns(list(argv)), capture_output=True, text=True, timeout=timeout
    )


def invoke_in_ns(
    libvirtd: Libvirtd, path: Path, *task: str, timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    """An invoke task as an operator runs it, inside the namespace where the VMs' addresses
    exist."""
    argv = [sys.executable, "-m", "invoke", *task, f"--fleet={path}"]
    return subprocess.run(
        libvirtd.in_netns(argv), cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def ssh_in_ns(
    libvirtd: Libvirtd, key: Path, ip: str, command: str
) -> subprocess.CompletedProcess[str]:
    """`command` on a VM as `ops` (the test's own checks; the fleet checks host keys)."""
    argv = [
        "ssh",
        "-i",
        str(key),
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
        f"ops@{ip}",
        command,
    ]
    return in_ns(libvirtd, *argv, timeout=120)


def start_network(
    libvirtd: Libvirtd, work: Path, plan: FleetPlan, bridge: str, subnet: str
) -> subprocess.Popen[bytes]:
    """The bridge, its address `subnet`.1, and dnsmasq answering DHCP for exactly the
    planned MACs (`subnet`: the first three octets)."""
    for argv in (
        ("ip", "link", "add", bridge, "type", "bridge"),
        ("ip", "addr", "add", f"{subnet}.1/24", "dev", bridge),
        ("ip", "link", "set", bridge, "up"),
    ):
        done = in_ns(libvirtd, *argv)
        assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr}"
    hosts = work / "dhcp-hosts"
    hosts.write_text("".join(f"{n.mac},{n.ip},{n.name}\n" for n in plan.nodes.values()))
    log = (work / "dnsmasq.log").open("ab")
    return subprocess.Popen(
        libvirtd.in_netns(
            [
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--user=root",
                "--port=0",  # no DNS: the members use addresses only (skip-name-resolve)
                f"--interface={bridge}",
                "--bind-interfaces",
                f"--dhcp-range={subnet}.0,static,255.255.255.0",
                f"--dhcp-hostsfile={hosts}",
                f"--dhcp-leasefile={work / 'dnsmasq.leases'}",
                "--log-dhcp",
                "--log-facility=-",
            ]
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
