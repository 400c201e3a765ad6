"""The whole `apply` flow against a temporary root: real blkid/wipefs/mkfs on image files,
systemd and mount commands recorded."""

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from appcore.claim import Claim
from appcore.cli import main
from appcore_testkit import (
    MARKER_TEXT,
    RecordingRunner,
    add_smbios,
    attach_disk,
    ext4_at,
    make_image,
    make_root,
    read_marker,
)

from tests.prereq import require_tools

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def tools() -> None:
    require_tools("blkid", "wipefs", "mkfs.xfs", "mkfs.ext4", "sfdisk", "debugfs", "e2fsck")


def apply(root: Path, runner: RecordingRunner, *extra: str) -> int:
    return main(["--root", str(root), "apply", "--disk-wait", "0"] + list(extra), runner=runner)


def state(root: Path) -> dict:
    return json.loads((root / "run/appcore/state.json").read_text())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mysql_root(tmp_path: Path, kind: str) -> Path:
    root = make_root(tmp_path, services=["mysql.service"])
    add_smbios(root, ["appcore:role=MYSQL_MASTER", "appcore:cluster=pxc-blue", *CLUSTER_ID])
    attach_disk(root, "DATA_DB", make_image(tmp_path / "data_db.img", kind))
    return root


# What the hypervisor passes a cluster member (fleet.apply's OEM strings).
CLUSTER_ID = ["appcore:ip=10.20.0.11", "appcore:peers=10.20.0.11,10.20.0.12,10.20.0.13"]


def test_blank_disk_is_formatted_mounted_and_galera_member_waits_for_the_fleet(
    tmp_path: Path,
) -> None:
    """MYSQL_MASTER, blank DATA_DB: xfs made, mount unit written and started; mysql is not
    started at boot (the fleet bootstraps or joins it), its position is reported."""
    root = mysql_root(tmp_path, "blank")
    runner = RecordingRunner()
    assert apply(root, runner) == 0
    mount_unit = (root / "etc/systemd/system/data-db.mount").read_text()
    assert "What=/dev/disk/by-id/virtio-DATA_DB\nWhere=/data/db\nType=xfs\n" in mount_unit
    dropin = (root / "etc/systemd/system/mysql.service.d/50-appcore.conf").read_text()
    assert "RequiresMountsFor=/data/db\n" in dropin
    cnf = (root / "data/db/conf/appcore-role.cnf").read_text()
    assert "datadir=/data/db/mysql\n" in cnf and "wsrep_cluster_name=pxc-blue\n" in cnf
    assert "wsrep_cluster_address=gcomm://10.20.0.11,10.20.0.12,10.20.0.13\n" in cnf
    assert "wsrep_node_address=10.20.0.11\n" in cnf
    starts = [a for a in runner.recorded if a[:2] == ["systemctl", "start"]]
    assert starts == [["systemctl", "start", "data-db.mount"]]
    doc = state(root)
    assert doc["members"] == 3
    assert doc["galera"] == {
        "uuid": "00000000-0000-0000-0000-000000000000",
        "seqno": -1,
        "safe_to_bootstrap": False,
        "source": "none",
        "has_data": False,
        "running": False,
        "primary": False,
    }
    assert doc["disks"][0]["decision"] == "format" and doc["disks"][0]["fstype"] == "xfs"
    assert "format /dev/disk/by-id/virtio-DATA_DB as xfs (label DATA_DB)" in doc["changes"]
    assert doc["selinux"] == "not enabled: contexts not set"


def test_second_boot_changes_nothing(tmp_path: Path) -> None:
    """A second apply neither formats nor rewrites anything: the disk bytes stay identical."""
    root = mysql_root(tmp_path, "blank")
    runner = RecordingRunner()
    assert apply(root, runner) == 0
    before = digest(tmp_path / "data_db.img")
    runner.recorded.clear()
    assert apply(root, runner) == 0
    assert state(root)["changes"] == []
    assert state(root)["disks"][0]["decision"] == "mount"
    assert runner.mutations() == []
    assert digest(tmp_path / "data_db.img") == before


@pytest.mark.parametrize(
    "kind,reason",
    [
        ("gpt", "carries a gpt partition table"),
        ("ext4:OTHER", "carries a ext4 filesystem labelled 'OTHER'"),
        ("junk", "non-zero data at offset 4"),
        ("wiped-ext4:FOREIGN", "ext4 signature at offset 1048576 (label 'FOREIGN')"),
    ],
)
def test_foreign_disk_is_never_touched(tmp_path: Path, kind: str, reason: str) -> None:
    """A foreign disk: exit 4, disk bytes unchanged, no unit written, no service started."""
    root = mysql_root(tmp_path, kind)
    before = digest(tmp_path / "data_db.img")
    runner = RecordingRunner()
    assert apply(root, runner) == 4
    assert reason in state(root)["error"]
    assert digest(tmp_path / "data_db.img") == before
    assert not (root / "etc/systemd/system").exists()
    assert runner.mutations() == []


def test_filesystem_behind_a_wiped_partition_table_survives_apply(tmp_path: Path) -> None:
    """Wiped table, ext4 at 1 MiB: exit 4, the error names device and find, the fs is intact."""
    root = mysql_root(tmp_path, "wiped-ext4:FOREIGN")
    assert apply(root, RecordingRunner()) == 4
    assert state(root)["error"].startswith(
        "data disk DATA_DB (/dev/disk/by-id/virtio-DATA_DB) is not provably blank: "
        "ext4 signature at offset 1048576 (label 'FOREIGN'); "
    )
    image = tmp_path / "data_db.img"
    fsck = subprocess.run(
        ["e2fsck", "-n", ext4_at(image)], capture_output=True, text=True, check=False
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert read_marker(image) == MARKER_TEXT


def test_missing_data_disk_fails_closed(tmp_path: Path) -> None:
    """No virtio-DATA_DB link: exit 4, the message says which serial to attach."""
    root = make_root(tmp_path, services=["mysql.service"])
    (root / "etc/appcore/role").write_text("MYSQL_RR_7D\n")
    assert apply(root, RecordingRunner()) == 4
    assert "attach it with <serial>DATA_DB</serial>" in state(root)["error"]


def test_ext4_is_used_when_mkfs_xfs_is_missing(tmp_path: Path, monkeypatch) -> None:
    """Where mkfs.xfs is absent, the disk is made ext4 and that is recorded."""
    root = make_root(tmp_path, services=["hazelcast.service"])
    (root / "etc/appcore/role").write_text("HAZELCAST\n")
    add_smbios(root, CLUSTER_ID)
    attach_disk(root, "DATA_MG", make_image(tmp_path / "mg.img", "blank"))
    runner = RecordingRunner()
    real_which = runner.which
    monkeypatch.setattr(runner, "which", lambda n: None if n == "mkfs.xfs" else real_which(n))
    assert apply(root, runner) == 0
    assert state(root)["disks"][0]["fstype"] == "ext4"
    assert "Type=ext4\n" in (root / "etc/systemd/system/data-mg.mount").read_text()
    members = 'member-list: ["10.20.0.11", "10.20.0.12", "10.20.0.13"]\n'
    assert members in (root / "data/mg/conf/appcore-role.yaml").read_text()


def test_cluster_role_without_peers_configures_nothing(tmp_path: Path) -> None:
    """A cluster member told no peers fails closed: PXC with an empty gcomm:// would start a
    cluster of its own."""
    root = make_root(tmp_path, services=["mysql.service"])
    add_smbios(root, ["appcore:role=MYSQL_MASTER", "appcore:ip=10.20.0.11"])
    image = make_image(tmp_path / "data_db.img", "blank")
    attach_disk(root, "DATA_DB", image)
    before = digest(image)
    assert apply(root, RecordingRunner()) == 3
    assert state(root)["error"] == (
        "role MYSQL_MASTER needs parameter 'peers': set appcore:peers=VALUE"
    )
    assert digest(image) == before
    assert not (root / "etc/systemd/system/data-db.mount").exists()


def test_selinux_contexts_are_set_when_enabled(tmp_path: Path) -> None:
    """With SELinux enabled: fcontext for /data/db is added once, restorecon runs on the mount."""
    root = mysql_root(tmp_path, "blank")
    (root / "sys/fs/selinux").mkdir(parents=True)
    (root / "sys/fs/selinux/enforce").write_text("1")
    runner = RecordingRunner()
    assert apply(root, runner) == 0
    assert ["semanage", "fcontext", "-a", "-t", "mysqld_db_t", "/data/db(/.*)?"] in runner.recorded
    assert ["restorecon", "-R", "-v", str(root / "data/db")] in runner.recorded
    runner.recorded.clear()
    assert apply(root, runner) == 0
    assert not [a for a in runner.recorded if a[:3] == ["semanage", "fcontext", "-a"]]


def test_forced_role_change_needs_blank_disks(tmp_path: Path) -> None:
    """MYSQL_MASTER -> MYSQL_READONLY with --force is still refused once the disk holds data."""
    root = mysql_root(tmp_path, "blank")
    runner = RecordingRunner()
    assert apply(root, runner) == 0
    (root / "sys/firmware/dmi/entries/11-0/raw").unlink()
    add_smbios(root, CLUSTER_ID, entry="11-1")
    (root / "etc/appcore/role").write_text("MYSQL_READONLY\n")
    assert apply(root, runner, "--force-role-change") == 3
    assert "data disk DATA_DB is not blank" in state(root)["error"]


def test_selftest_role_configures_the_stand_in(tmp_path: Path) -> None:
    """The SELFTEST role (stand-in image) formats DATA_DB and enables appcore-selftest."""
    root = make_root(tmp_path, services=["appcore-selftest.service"], selftest=True)
    add_smbios(root, ["appcore:role=SELFTEST"])
    attach_disk(root, "DATA_DB", make_image(tmp_path / "db.img", "blank"))
    runner = RecordingRunner()
    assert apply(root, runner) == 0
    assert runner.enabled == {"appcore-selftest.service"}
    assert "role=SELFTEST\n" in (root / "data/db/conf/selftest.conf").read_text()


def test_check_disk_command_gates_the_mount(tmp_path: Path) -> None:
    """appcore check-disk exits 0 on our disk and 4 on a foreign one."""
    root = mysql_root(tmp_path, "xfs:DATA_DB")
    assert main(["--root", str(root), "check-disk", "DATA_DB"]) == 0
    other = mysql_root(tmp_path / "other", "ext4:DATA_DS")
    assert main(["--root", str(other), "check-disk", "DATA_DB"]) == 4


def test_a_mount_queued_at_boot_goes_before_the_probe(tmp_path: Path, monkeypatch) -> None:
    """At a later boot the role service's RequiresMountsFor= has queued the data mount: App-Core
    lets that job run before it probes (its exclusive claim would fail the mount with EBUSY),
    and records no change."""
    root = make_root(tmp_path, services=["appcore-selftest.service"], selftest=True)
    add_smbios(root, ["appcore:role=SELFTEST"])
    attach_disk(root, "DATA_DB", make_image(tmp_path / "db.img", "blank"))
    runner = RecordingRunner()
    assert apply(root, runner) == 0
    runner.recorded.clear()
    runner.active.clear()  # a new boot: nothing active, the boot's jobs waiting
    runner.queued.update({"data-db.mount", "appcore-selftest.service"})
    real_take = Claim.take

    def take(claim, *args, **kwargs):  # type: ignore[no-untyped-def]
        runner.recorded.append(["claim", claim.device])
        return real_take(claim, *args, **kwargs)

    monkeypatch.setattr(Claim, "take", take)
    assert apply(root, runner) == 0
    steps = [a[:3] for a in runner.recorded if a[:2] == ["systemctl", "start"] or a[0] == "claim"]
    assert steps[:2] == [["systemctl", "start", "data-db.mount"], ["claim", steps[1][1]]]
    assert state(root)["changes"] == []
