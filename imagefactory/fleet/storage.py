"""A hypervisor's VM disks: the template (once per version), an OS overlay per VM, the data
disk. Two ways to reach them, one interface:

- `LocalFiles` (a local URI, or `storage: files`): files under the storage dir, written by
  this process: `templates/<family>-<version>.qcow2`, `vms/<node>/os-<version>.qcow2`,
  `vms/<node>/data-<serial>.raw`.
- `PoolVolumes` (a remote URI such as qemu+ssh://, or `storage: pool`): volumes of a libvirt
  `dir` pool (one per storage dir, `imagefactory-<hash>`), made through libvirt itself: the
  template uploaded over the connection's stream, overlays and data disks created by the
  daemon. Pools are flat: `tpl-<family>-<version>.qcow2`, `<node>.os-<version>.qcow2`,
  `<node>.data-<serial>.raw`. A template counts as installed only once its `.sha256` marker
  volume exists, so an upload cut off halfway is replaced, never used.

Either way a data disk is created only where none exists, never resized, and removed only by
`fleet.destroy --delete-data`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from imagefactory.fleet.hypervisor import FleetError, is_local
from imagefactory.fleet.model import GB, Hypervisor, StorageMode
from imagefactory.util.fsutil import write_atomic
from imagefactory.util.tools import require, run

CHUNK = 4 * 1024 * 1024
MIB = 1024 * 1024
_ZEROS = bytes(CHUNK)


def pool_name(storage_dir: Path) -> str:
    """The libvirt pool of one storage dir: one pool per directory, so two fleets (or two
    storage dirs) on one host never fight over a pool's path."""
    return "imagefactory-" + hashlib.sha256(str(storage_dir).encode()).hexdigest()[:10]


def disk_bytes(size_gb: int) -> int:
    """A disk's size: the GB asked for, rounded up to whole MiB (QEMU opens raw disks
    with O_DIRECT under cache='none' and refuses sizes that are not a multiple of the block
    size: "Image size is not a multiple of request alignment")."""
    return -(-size_gb * GB // MIB) * MIB


@dataclass(frozen=True)
class DataDisk:
    path: Path
    size: int
    written: int  # bytes allocated: what deleting it would lose at most


class VmStorage(Protocol):
    hv: Hypervisor

    def template(self, family: str, version: str) -> Path: ...
    def overlay(self, node: str, version: str) -> Path: ...
    def data(self, node: str, serial: str) -> Path: ...
    def console_log(self, node: str) -> Path: ...
    def has_template(self, family: str, version: str) -> bool: ...
    def install_template(self, source: Path, sha256: str, family: str, version: str) -> bool: ...
    def create_overlay(self, node: str, template: Path, version: str, size_gb: int) -> bool: ...
    def create_data(self, node: str, serial: str, size_gb: int) -> bool: ...
    def data_disks(self, node: str) -> list[DataDisk]: ...
    def delete_data(self, disk: DataDisk) -> None: ...
    def remove_os(self, node: str) -> None: ...
    def remove_overlay(self, node: str, version: str) -> None: ...
    def templates(self) -> list[Path]: ...
    def backing_files(self) -> set[Path]: ...
    def remove_template(self, path: Path) -> None: ...
    def record_definition(self, node: str, xml: str) -> None: ...
    def read_data(self, disk: DataDisk) -> Iterator[bytes]: ...
    def receive_data(self, node: str, serial: str, size: int, chunks: Iterable[bytes]) -> str: ...


def check_overlay_size(node: str, template: Path, virtual: int, size_gb: int) -> None:
    if size_gb * GB < virtual:
        raise FleetError(
            f"{node}: os_disk_gb {size_gb} is smaller than its template "
            f"{template.name} ({virtual / GB:.1f} GB)"
        )


def hash_mismatch(hv: Hypervisor, source: Path, found: str, sha256: str) -> FleetError:
    return FleetError(
        f"{source}: sha256 {found} does not match the signed manifest's "
        f"{sha256}; not installed on {hv.name}"
    )


class FilesLayout:
    """Where a VM's disks live as plain files: a directory per VM."""

    def __init__(self, hv: Hypervisor) -> None:
        self.hv = hv
        self.root = hv.storage_dir

    def template(self, family: str, version: str) -> Path:
        return self.root / "templates" / f"{family}-{version}.qcow2"

    def vm_dir(self, node: str) -> Path:
        return self.root / "vms" / node

    def overlay(self, node: str, version: str) -> Path:
        return self.vm_dir(node) / f"os-{version}.qcow2"

    def data(self, node: str, serial: str) -> Path:
        return self.vm_dir(node) / f"data-{serial.lower()}.raw"

    def console_log(self, node: str) -> Path:
        return self.vm_dir(node) / "console.log"


class PoolLayout:
    """Where a VM's disks live as volumes of a (flat) libvirt dir pool."""

    def __init__(self, hv: Hypervisor) -> None:
        self.hv = hv
        self.root = hv.storage_dir

    def template(self, family: str, version: str) -> Path:
        return self.root / f"tpl-{family}-{version}.qcow2"

    def overlay(self, node: str, version: str) -> Path:
        return self.root / f"{node}.os-{version}.qcow2"

    def data(self, node: str, serial: str) -> Path:
        return self.root / f"{node}.data-{serial.lower()}.raw"

    def console_log(self, node: str) -> Path:
        return self.root / f"{node}.console.log"


def resolved_mode(hv: Hypervisor) -> StorageMode:
    if hv.storage is StorageMode.AUTO:
        return StorageMode.FILES if is_local(hv.uri) else StorageMode.POOL
    return hv.storage


def layout_for(hv: Hypervisor) -> FilesLayout | PoolLayout:
    """Paths only (rendering away from the hypervisor writes nothing)."""
    return FilesLayout(hv) if resolved_mode(hv) is StorageMode.FILES else PoolLayout(hv)


class LocalFiles(FilesLayout):
    """VM disks as files under the storage dir of this machine."""

    def has_template(self, family: str, version: str) -> bool:
        return self.template(family, version).exists()

    def install_template(self, source: Path, sha256: str, family: str, version: str) -> bool:
        """Copy a verified template in once per version, checking its sha256 while copying;
        False when it is already there."""
        dest = self.template(family, version)
        if dest.exists():
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        digest = hashlib.sha256()
        try:
            with source.open("rb") as src, tmp.open("wb") as out:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != sha256:
                raise hash_mismatch(self.hv, source, digest.hexdigest(), sha256)
            tmp.chmod(0o444)
            tmp.rename(dest)
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def create_overlay(self, node: str, template: Path, version: str, size_gb: int) -> bool:
        """The VM's OS disk: a qcow2 overlay on the template, grown to the OS disk size."""
        path = self.overlay(node, version)
        if path.exists():
            return False
        if not template.exists():
            raise FleetError(f"hypervisor {self.hv.name}: template {template} is missing")
        info = run([require("qemu-img"), "info", "--output=json", str(template)]).stdout
        check_overlay_size(node, template, int(json.loads(info)["virtual-size"]), size_gb)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.unlink(missing_ok=True)
        run(
            [
                require("qemu-img"),
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "qcow2",
                "-b",
                str(template),
                str(tmp),
                str(disk_bytes(size_gb)),
            ]
        )
        tmp.rename(path)
        return True

    def create_data(self, node: str, serial: str, size_gb: int) -> bool:
        """A blank sparse data disk, only if none exists: an existing one is never touched."""
        path = self.data(node, serial)
        if path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as fh:
            fh.truncate(disk_bytes(size_gb))
        os.link(tmp, path)  # fails if a disk appeared meanwhile: never overwrite one
        tmp.unlink()
        return True

    def data_disks(self, node: str) -> list[DataDisk]:
        return [
            DataDisk(p, p.stat().st_size, p.stat().st_blocks * 512)
            for p in sorted(self.vm_dir(node).glob("data-*.raw"))
        ]

    def delete_data(self, disk: DataDisk) -> None:
        disk.path.unlink()

    def remove_os(self, node: str) -> None:
        """Remove the node's overlays and console log; data disks stay."""
        for path in sorted(self.vm_dir(node).glob("os-*.qcow2")) + [self.console_log(node)]:
            path.unlink(missing_ok=True)

    def remove_overlay(self, node: str, version: str) -> None:
        self.overlay(node, version).unlink(missing_ok=True)

    def templates(self) -> list[Path]:
        return sorted(p.resolve() for p in (self.root / "templates").glob("*.qcow2"))

    def backing_files(self) -> set[Path]:
        """Every template some overlay on this host is built on."""
        out = set()
        for overlay in (self.root / "vms").glob("*/os-*.qcow2"):
            # -U: a running VM's QEMU holds the image lock; reading the header is safe
            info = run([require("qemu-img"), "info", "-U", "--output=json", str(overlay)]).stdout
            backing = json.loads(info).get("backing-filename")
            if backing:
                out.add((overlay.parent / backing).resolve())
        return out

    def remove_template(self, path: Path) -> None:
        path.unlink()

    def record_definition(self, node: str, xml: str) -> None:
        """The last applied definition beside the VM's disks, for people and backups."""
        self.vm_dir(node).mkdir(parents=True, exist_ok=True)
        write_atomic(self.vm_dir(node) / "domain.xml", xml)

    def read_data(self, disk: DataDisk) -> Iterator[bytes]:
        with disk.path.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                yield chunk

    def receive_data(self, node: str, serial: str, size: int, chunks: Iterable[bytes]) -> str:
        """A data disk made from `chunks` (a move from another host), only where none exists;
        zero chunks stay holes. The sha256 of what was written."""
        path = self.data(node, serial)
        if path.exists():
            raise FleetError(f"hypervisor {self.hv.name}: {path} exists: never overwritten")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.moving")
        digest = hashlib.sha256()
        try:
            with tmp.open("wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    if chunk == _ZEROS[: len(chunk)]:
                        out.seek(len(chunk), os.SEEK_CUR)
                    else:
                        out.write(chunk)
                out.truncate(size)
                out.flush()
                os.fsync(out.fileno())
            os.link(tmp, path)  # fails if a disk appeared meanwhile: never overwrite one
        finally:
            tmp.unlink(missing_ok=True)
        return digest.hexdigest()
