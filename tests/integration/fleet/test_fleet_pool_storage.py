"""VM disks made through libvirt's storage pool API (the path for remote hypervisors), against
a real libvirtd: template upload with its sha256 checked, overlays, data disks kept."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from imagefactory.fleet.hypervisor import Connections, FleetError
from imagefactory.fleet.model import (
    Capacity,
    Hypervisor,
    NetworkAttachment,
    NetworkKind,
    StorageMode,
)
from imagefactory.fleet.pool import PoolVolumes
from imagefactory.util.fsutil import sha256_file
from tests.prereq import require_tool

pytestmark = pytest.mark.integration


@pytest.fixture
def pool(libvirtd, tmp_path: Path) -> PoolVolumes:
    require_tool("qemu-img")
    hv = Hypervisor(
        "lab",
        libvirtd.uri,
        tmp_path / "pool",
        Capacity(2, 4, 20),
        NetworkAttachment(NetworkKind.BRIDGE, "br0"),
        storage=StorageMode.POOL,
    )
    conns = Connections()
    volumes = PoolVolumes(hv, conns.get(hv))
    yield volumes
    volumes.pool.destroy()  # the daemon serves the whole session: leave no pool behind
    volumes.pool.undefine()
    conns.close()


def template(tmp_path: Path) -> Path:
    path = tmp_path / "tpl.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "256M"], check=True)
    return path


def info(path: Path) -> dict:
    return json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(path)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )


def test_template_is_uploaded_once_and_checked(pool: PoolVolumes, tmp_path: Path) -> None:
    """The uploaded template has the source's bytes; a second install does nothing."""
    src = template(tmp_path)
    assert pool.install_template(src, sha256_file(src), "standin", "v1") is True
    assert sha256_file(pool.template("standin", "v1")) == sha256_file(src)
    assert pool.install_template(src, sha256_file(src), "standin", "v1") is False


def test_a_wrong_hash_leaves_no_volume(pool: PoolVolumes, tmp_path: Path) -> None:
    """Bytes that do not match the manifest's sha256: refused, the volume removed."""
    src = template(tmp_path)
    with pytest.raises(FleetError, match="does not match the signed manifest"):
        pool.install_template(src, "0" * 64, "standin", "v1")
    assert not pool.template("standin", "v1").exists()


def test_an_upload_without_its_marker_is_replaced(pool: PoolVolumes, tmp_path: Path) -> None:
    """A template volume left by a cut-off upload (no .sha256 marker) is uploaded again."""
    src = template(tmp_path)
    pool.pool.createXML(
        "<volume><name>tpl-standin-v1.qcow2</name><capacity>4096</capacity>"
        "<target><format type='raw'/></target></volume>",
        0,
    )
    assert pool.install_template(src, sha256_file(src), "standin", "v1") is True
    assert sha256_file(pool.template("standin", "v1")) == sha256_file(src)


def test_overlay_and_data_disk(pool: PoolVolumes, tmp_path: Path) -> None:
    """The overlay is a qcow2 on the template, grown to the OS disk size (whole MiB); the data
    disk is sparse raw; neither is made twice; removing the OS keeps the data."""
    src = template(tmp_path)
    pool.install_template(src, sha256_file(src), "standin", "v1")
    tpl = pool.template("standin", "v1")
    assert pool.create_overlay("vm-01", tpl, "v1", 1) is True
    overlay = info(pool.overlay("vm-01", "v1"))
    assert (overlay["backing-filename"], overlay["virtual-size"]) == (str(tpl), 954 * 1024**2)
    assert pool.create_data("vm-01", "DATA_DB", 1) is True
    data = pool.data("vm-01", "DATA_DB")
    data.write_bytes(b"keep me")  # the guest's data (this daemon runs as root, so may we)
    assert pool.create_overlay("vm-01", tpl, "v1", 1) is False
    assert pool.create_data("vm-01", "DATA_DB", 1) is False
    pool.remove_os("vm-01")
    assert not pool.overlay("vm-01", "v1").exists()
    assert [d.path for d in pool.data_disks("vm-01")] == [data]
    assert data.read_bytes() == b"keep me"


def test_overlay_smaller_than_template_is_refused(pool: PoolVolumes, tmp_path: Path) -> None:
    """An OS disk smaller than the template's virtual size: refused with the sizes."""
    src = tmp_path / "big.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(src), "3G"], check=True)
    pool.install_template(src, sha256_file(src), "standin", "v2")
    with pytest.raises(FleetError, match="os_disk_gb 2 is smaller than its template"):
        pool.create_overlay("vm-02", pool.template("standin", "v2"), "v2", 2)


def test_a_data_disk_moves_to_another_pool_byte_for_byte(pool: PoolVolumes, tmp_path: Path) -> None:
    """A rebalance's copy: the volume downloaded from one pool over the connection's stream,
    uploaded into another, the same bytes on both; a volume there is never overwritten."""
    other = PoolVolumes(
        dataclasses.replace(pool.hv, name="lab-2", storage_dir=tmp_path / "pool-2"), pool.conn
    )
    try:
        pool.create_data("db-01", "data_db", 1)
        source = pool.data("db-01", "data_db")
        with source.open("r+b") as fh:
            fh.seek(3 * 2**20)
            fh.write(b"rows written before the move")
        (disk,) = pool.data_disks("db-01")
        sent = other.receive_data("db-01", "data_db", disk.size, pool.read_data(disk))
        (copy,) = other.data_disks("db-01")
        assert copy.size == disk.size
        assert sha256_file(copy.path) == sent == sha256_file(source)
        with pytest.raises(FleetError, match="exists: never overwritten"):
            other.receive_data("db-01", "data_db", disk.size, iter([b"other bytes"]))
        assert sha256_file(copy.path) == sent
    finally:
        other.pool.destroy()
        other.pool.undefine()
