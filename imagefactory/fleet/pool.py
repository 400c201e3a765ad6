"""VM disks as volumes of a libvirt `dir` storage pool (one per storage dir) at the host's
storage dir, made through the connection itself, so the same code serves a remote hypervisor
(qemu+ssh://): the template is uploaded over the connection's stream with its sha256 computed
on the way; overlays and data disks are created by the daemon. See fleet/storage.py for the
interface and the file-based twin."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from imagefactory.fleet.hypervisor import FleetError, libvirt_module
from imagefactory.fleet.model import Hypervisor
from imagefactory.fleet.storage import (
    CHUNK,
    DataDisk,
    PoolLayout,
    check_overlay_size,
    disk_bytes,
    hash_mismatch,
    pool_name,
)


class PoolVolumes(PoolLayout):
    """VM disks as volumes of the storage dir's dir pool, made through the libvirt
    connection (works the same over qemu+ssh://)."""

    def __init__(self, hv: Hypervisor, conn: Any) -> None:
        super().__init__(hv)
        self.conn = conn
        self.libvirt = libvirt_module()
        self.pool = self._ensure_pool()

    def _ensure_pool(self) -> Any:
        lv = self.libvirt
        name = pool_name(self.root)
        try:
            pool = self.conn.storagePoolLookupByName(name)
        except lv.libvirtError:
            xml = (
                f"<pool type='dir'><name>{name}</name><target><path>{self.root}</path>"
                "</target></pool>"
            )
            try:
                pool = self.conn.storagePoolDefineXML(xml, 0)
                pool.build(0)
                pool.setAutostart(1)
            except lv.libvirtError as exc:
                raise FleetError(
                    f"hypervisor {self.hv.name}: cannot define storage pool "
                    f"{name} at {self.root}: {exc.get_error_message()}"
                ) from None
        path = Path(pool.XMLDesc(0).split("<path>", 1)[1].split("</path>", 1)[0])
        if path != self.root:
            raise FleetError(
                f"hypervisor {self.hv.name}: storage pool {name} is at {path}, "
                f"the fleet file says {self.root}"
            )
        if not pool.isActive():
            pool.create(0)
        pool.refresh(0)
        return pool

    def _vol(self, name: str) -> Any | None:
        try:
            return self.pool.storageVolLookupByName(name)
        except self.libvirt.libvirtError:
            return None

    def _create(self, name: str, fmt: str, capacity: int, backing: Path | None = None) -> Any:
        xml = (
            f"<volume><name>{name}</name><capacity unit='bytes'>{capacity}</capacity>"
            f"<allocation unit='bytes'>0</allocation><target><format type='{fmt}'/>"
            "</target>"
        )
        if backing is not None:
            xml += f"<backingStore><path>{backing}</path><format type='qcow2'/></backingStore>"
        try:
            return self.pool.createXML(xml + "</volume>", 0)
        except self.libvirt.libvirtError as exc:
            raise FleetError(
                f"hypervisor {self.hv.name}: cannot create volume {name}: {exc.get_error_message()}"
            ) from None

    def _upload(self, vol: Any, data: Any, size: int) -> str:
        """Stream `size` bytes from the file object into the volume; their sha256."""
        digest = hashlib.sha256()
        stream = self.conn.newStream(0)
        vol.upload(stream, 0, size, 0)
        try:
            while chunk := data.read(CHUNK):
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    sent = stream.send(view.tobytes())
                    view = view[sent:]
            stream.finish()
        except BaseException:
            stream.abort()
            raise
        return digest.hexdigest()

    def has_template(self, family: str, version: str) -> bool:
        name = self.template(family, version).name
        return self._vol(name + ".sha256") is not None and self._vol(name) is not None

    def install_template(self, source: Path, sha256: str, family: str, version: str) -> bool:
        name = self.template(family, version).name
        if self.has_template(family, version):
            return False
        for stale in (name, name + ".sha256"):  # an upload cut off before its marker
            vol = self._vol(stale)
            if vol is not None:
                vol.delete(0)
        size = source.stat().st_size
        vol = self._create(name, "raw", size)
        try:
            with source.open("rb") as fh:
                found = self._upload(vol, fh, size)
            if found != sha256:
                raise hash_mismatch(self.hv, source, found, sha256)
            marker = (sha256 + "\n").encode()
            self._upload(
                self._create(name + ".sha256", "raw", len(marker)), io.BytesIO(marker), len(marker)
            )
        except BaseException:
            vol.delete(0)
            raise
        self.pool.refresh(0)  # the volume's format is read from its header
        return True

    def create_overlay(self, node: str, template: Path, version: str, size_gb: int) -> bool:
        name = self.overlay(node, version).name
        if self._vol(name) is not None:
            return False
        tpl = self._vol(template.name)
        if tpl is None:
            raise FleetError(
                f"hypervisor {self.hv.name}: template volume {template.name} is missing"
            )
        check_overlay_size(node, template, int(tpl.info()[1]), size_gb)
        self._create(name, "qcow2", disk_bytes(size_gb), backing=template)
        return True

    def create_data(self, node: str, serial: str, size_gb: int) -> bool:
        name = self.data(node, serial).name
        if self._vol(name) is not None:
            return False
        self._create(name, "raw", disk_bytes(size_gb))
        return True

    def data_disks(self, node: str) -> list[DataDisk]:
        self.pool.refresh(0)
        out = []
        for name in sorted(self.pool.listVolumes()):
            if name.startswith(f"{node}.data-"):
                _kind, size, written = self.pool.storageVolLookupByName(name).info()
                out.append(DataDisk(self.root / name, int(size), int(written)))
        return out

    def delete_data(self, disk: DataDisk) -> None:
        vol = self._vol(disk.path.name)
        if vol is not None:
            vol.delete(0)

    def remove_os(self, node: str) -> None:
        self.pool.refresh(0)
        for name in self.pool.listVolumes():
            if name.startswith(f"{node}.os-") or name == f"{node}.console.log":
                self.pool.storageVolLookupByName(name).delete(0)

    def remove_overlay(self, node: str, version: str) -> None:
        vol = self._vol(self.overlay(node, version).name)
        if vol is not None:
            vol.delete(0)

    def templates(self) -> list[Path]:
        self.pool.refresh(0)
        return sorted(
            (self.root / n).resolve()
            for n in self.pool.listVolumes()
            if n.startswith("tpl-") and n.endswith(".qcow2")
        )

    def backing_files(self) -> set[Path]:
        self.pool.refresh(0)
        out = set()
        for name in self.pool.listVolumes():
            if ".os-" in name:
                xml = self.pool.storageVolLookupByName(name).XMLDesc(0)
                if "<backingStore>" in xml:
                    out.add(
                        Path(
                            xml.split("<backingStore>", 1)[1]
                            .split("<path>", 1)[1]
                            .split("</path>", 1)[0]
                        ).resolve()
                    )
        return out

    def remove_template(self, path: Path) -> None:
        for name in (path.name + ".sha256", path.name):  # marker first: never a marker alone
            vol = self._vol(name)
            if vol is not None:
                vol.delete(0)

    def record_definition(self, node: str, xml: str) -> None:
        """Nothing to write: libvirt keeps the definition (`virsh dumpxml`)."""

    def read_data(self, disk: DataDisk) -> Iterator[bytes]:
        """The volume's bytes over the connection's stream (works over qemu+ssh://)."""
        vol = self._vol(disk.path.name)
        if vol is None:
            raise FleetError(f"hypervisor {self.hv.name}: volume {disk.path.name} is missing")
        stream = self.conn.newStream(0)
        vol.download(stream, 0, 0, 0)
        try:
            while chunk := stream.recv(CHUNK):
                if isinstance(chunk, int):  # -2: would block (not on a blocking stream)
                    continue
                yield bytes(chunk)
            stream.finish()
        except BaseException:
            stream.abort()
            raise

    def receive_data(self, node: str, serial: str, size: int, chunks: Iterable[bytes]) -> str:
        """A data disk volume made from `chunks`, only where none exists; its sha256. A
        volume cut off halfway stays under the disk's name: the move's state says so, and
        the move that made it removes it when it resumes (fleet/move.py)."""
        name = self.data(node, serial).name
        if self._vol(name) is not None:
            raise FleetError(f"hypervisor {self.hv.name}: volume {name} exists: never overwritten")
        vol = self._create(name, "raw", size)
        return self._upload(vol, _ChunkReader(chunks), size)


class _ChunkReader:
    """An iterable of byte chunks as the file object _upload reads."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)

    def read(self, _size: int) -> bytes:
        return next(self._chunks, b"")
