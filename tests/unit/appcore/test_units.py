"""Unit files App-Core writes, and the installed-service check."""

from pathlib import Path

from appcore.hostfs import Host
from appcore.units import mount_unit_name, render_dropin, render_mount_unit, unit_installed
from appcore_testkit import CATALOGUE, make_root

from appcore.catalogue import load_catalogue

CAT = load_catalogue(str(CATALOGUE))


def test_mount_unit_name_follows_systemd_escaping() -> None:
    """/data/db is data-db.mount; a dash is escaped as \\x2d like systemd-escape does."""
    assert mount_unit_name("/data/db") == "data-db.mount"
    assert mount_unit_name("/data/my-db") == "data-my\\x2ddb.mount"


def test_mount_unit_is_gated_by_the_disk_check() -> None:
    """The mount requires appcore-disk@SERIAL and mounts by virtio serial with nodev,nosuid."""
    text = render_mount_unit(CAT.disks["DATA_DS"], "xfs")
    assert "Requires=appcore-disk@DATA_DS.service\n" in text
    assert "What=/dev/disk/by-id/virtio-DATA_DS\n" in text
    assert "Where=/data/ds\nType=xfs\nOptions=nodev,nosuid,noatime\n" in text


def test_dropin_requires_the_mount_and_appcore() -> None:
    """The role service drop-in has RequiresMountsFor and Requires/After appcore.service."""
    text = render_dropin(CAT.roles["REDPANDA"], ["/data/ms"])
    assert "RequiresMountsFor=/data/ms\n" in text
    assert "Requires=appcore.service\nAfter=appcore.service\n" in text


def test_worker_dropin_has_no_mount_requirement() -> None:
    """A worker role without data disk gets no RequiresMountsFor line."""
    assert "RequiresMountsFor" not in render_dropin(CAT.roles["APP"], [])


def test_unit_installed_finds_units_and_templates(tmp_path: Path) -> None:
    """A plain unit, a template instance and a missing unit are told apart."""
    root = make_root(tmp_path, services=["redpanda.service", "mysql@.service"])
    host = Host(str(root))
    assert unit_installed(host, "redpanda.service")
    assert unit_installed(host, "mysql@bootstrap.service")
    assert not unit_installed(host, "scylla-server.service")
