"""Fleet files for tests: small YAML documents written next to a throwaway ops key, simulated
hypervisors (libvirt's test driver, one host XML each with its own CPUs and memory) and a
directory store holding signed templates."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from imagefactory.store import api
from imagefactory.store.settings import StoreSettings
from tests.storekit import make_sealed_image

REPO = Path(__file__).resolve().parents[1]


def ops_key(directory: Path) -> Path:
    """A fresh ed25519 key pair; returns the public half's path."""
    key = directory / "ops_ed25519"
    if not key.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ops@fleet.test", "-f", str(key)],
            check=True,
        )
    return key.with_suffix(".pub")


def hypervisor(
    uri: str,
    storage: Path | str,
    vcpu: int = 64,
    memory_gib: int = 120,
    storage_gb: int = 12000,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "uri": uri,
        "storage_dir": str(storage),
        "capacity": {"vcpu": vcpu, "memory_gib": memory_gib, "storage_gb": storage_gb},
        "network": {"bridge": "br-fleet"},
        **extra,
    }


def group(
    role: str,
    family: str,
    count: int,
    topology: str,
    cluster: str,
    disk: tuple[str, int] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "role": role,
        "family": family,
        "count": count,
        "topology": topology,
        "cluster": cluster,
        **extra,
    }
    if disk:
        doc["data_disk"] = {"serial": disk[0], "size_gb": disk[1]}
    return doc


def write_fleet(
    directory: Path,
    hypervisors: dict[str, Any],
    groups: dict[str, Any],
    name: str = "test",
    **extra: Any,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    doc = {
        "version": 1,
        "fleet": name,
        "access": {"ssh_authorized_keys": [str(ops_key(directory))]},
        "network": {"subnet": "10.20.0.0/22", "gateway": "10.20.0.1", "dns": ["10.20.0.2"]},
        "hypervisors": hypervisors,
        "groups": groups,
        **extra,
    }
    path = directory / "fleet.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def production_with(directory: Path, hosts: int, **capacity: int) -> Path:
    """The repository's fleet.yaml with `hosts` hypervisors of the given capacity."""
    doc = yaml.safe_load((REPO / "fleet.yaml").read_text())
    doc["access"] = {"ssh_authorized_keys": [str(ops_key(directory))]}
    doc.pop("store")
    doc["hypervisors"] = {
        f"kvm-{i:02d}": hypervisor(
            f"qemu+ssh://root@kvm-{i:02d}/system", "/var/lib/imagefactory/fleet", **capacity
        )
        for i in range(1, hosts + 1)
    }
    path = directory / "fleet.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


HOST_XML = """<node>
  <cpu><mhz>2000</mhz><model>x86_64</model><active>{cpus}</active><nodes>1</nodes>
    <sockets>1</sockets><cores>{cpus}</cores><threads>1</threads></cpu>
  <memory>{kib}</memory>
</node>
"""


def simulated_host(directory: Path, name: str, cpus: int = 16, memory_gib: int = 64) -> str:
    """A test:/// URI for a simulated hypervisor with these CPUs and this memory."""
    path = directory / f"{name}.xml"
    path.write_text(HOST_XML.format(cpus=cpus, kib=memory_gib * 1024 * 1024))
    return f"test://{path}"


def three_simulated_hosts(directory: Path) -> dict[str, Any]:
    """hv-a, hv-b, hv-c: test:/// hypervisors of 16 CPUs and 64 GiB, storage in `directory`."""
    return {
        name: {
            "uri": simulated_host(directory, name),
            "storage_dir": str(directory / name),
            "capacity": {"vcpu": 16, "memory_gib": 64, "storage_gb": 100},
            "network": {"bridge": "br-fleet"},
        }
        for name in ("hv-a", "hv-b", "hv-c")
    }


@dataclasses.dataclass(frozen=True)
class TemplateStore:
    settings: StoreSettings  # as a hypervisor sees it (no signing key needed)
    signing_key: Path

    def store_section(self) -> dict[str, str]:
        """The fleet file's store: section that reads this store."""
        s = self.settings
        return {
            "kind": "fs",
            "path": str(s.path),
            "allowed_signers": str(s.allowed_signers),
            "image_dir": str(s.image_dir),
        }

    def publish(
        self, family: str, workdir: Path, seed: int = 0, channel: str = "stable", day: int = 24
    ) -> str:
        """A real (empty) qcow2 published as `family`; another `day` is another version."""
        sealed = make_sealed_image(
            workdir / f"{family}-{seed}-{day}",
            family,
            64 * 1024 * 1024,
            seed=seed,
            qcow2=True,
            finished=datetime(2026, 11, day, 10, 15, tzinfo=UTC),
        )
        settings = dataclasses.replace(self.settings, signing_key=self.signing_key)
        return api.publish(settings, sealed, channel, show_progress=False).version


def scaled_production(
    directory: Path, copies: int, uri: Callable[[int], str] | None = None
) -> Path:
    """The repository's fleet.yaml copied `copies` times: every group (and cluster) once per
    copy, the first under its own name, copy k as NAME-kNNN; 6 x copies hypervisors of the
    production size (uri(i) gives hypervisor i's URI; a placeholder ssh URI by default) and a
    /16 to address them."""
    doc = yaml.safe_load((REPO / "fleet.yaml").read_text())
    doc["access"] = {"ssh_authorized_keys": [str(ops_key(directory))]}
    doc.pop("store")
    doc["network"] = {"subnet": "10.64.0.0/16", "gateway": "10.64.0.1", "dns": ["10.64.0.2"]}
    groups = {}
    for k in range(1, copies + 1):
        tail = "" if k == 1 else f"-k{k:03d}"
        for name, g in doc["groups"].items():
            groups[name + tail] = {**g, "cluster": g["cluster"] + tail}
    doc["groups"] = groups
    doc["hypervisors"] = {
        f"kvm-{i:04d}": hypervisor(
            uri(i) if uri else f"qemu+ssh://root@kvm-{i:04d}/system",
            directory / f"kvm-{i:04d}" if uri else "/var/lib/imagefactory/fleet",
        )
        for i in range(1, 6 * copies + 1)
    }
    path = directory / "fleet.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
