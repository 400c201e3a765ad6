"""App-Core on the booted stand-in image (checked with testinfra).

Boot conditions these specs expect (see appcore/README.md, "Testing on the stand-in"):
the image was built with `install.sh --family persistence --with-selftest`, QEMU was started
with `-smbios type=11,value=appcore:role=SELFTEST` and one blank virtio disk with serial DATA_DB.
"""

import json

import pytest

pytestmark = pytest.mark.image


def state(host):
    return json.loads(host.file("/run/appcore/state.json").content_string)


def test_appcore_unit_enabled_and_succeeded(host):
    """appcore.service is enabled and active (a oneshot that exited 0)."""
    unit = host.service("appcore.service")
    assert unit.is_enabled
    assert host.run("systemctl show -p Result --value appcore.service").stdout.strip() == "success"
    assert unit.is_running


def test_role_and_source_recorded(host):
    """state.json says role SELFTEST, found in the SMBIOS OEM strings, configured."""
    doc = state(host)
    assert (doc["status"], doc["role"], doc["source"], doc["family"]) == (
        "configured",
        "SELFTEST",
        "smbios",
        "persistence",
    )


def test_status_command_reports_the_role(host):
    """`appcore status` exits 0 and names the role and its channel."""
    with host.sudo():  # /usr/sbin is on root's PATH only
        result = host.run("appcore status")
    assert result.rc == 0
    assert "role:    SELFTEST (from smbios: type 11" in result.stdout


def test_data_disk_mounted_by_serial(host):
    """/data/db is mounted from the virtio disk with serial DATA_DB."""
    source = host.run("findmnt -n -o SOURCE /data/db").stdout.strip()
    by_id = host.run("readlink -f /dev/disk/by-id/virtio-DATA_DB").stdout.strip()
    assert source == by_id
    assert source.startswith("/dev/vd")


def test_data_disk_mount_options(host):
    """/data/db is mounted nodev,nosuid."""
    options = host.mount_point("/data/db").options
    assert "nodev" in options
    assert "nosuid" in options


def test_data_disk_filesystem_and_label(host):
    """The data disk carries the filesystem recorded in state.json (xfs or ext4), label DATA_DB."""
    with host.sudo():
        probe = host.run("blkid -p -o export /dev/disk/by-id/virtio-DATA_DB").stdout
    fstype = state(host)["disks"][0]["fstype"]
    assert fstype in ("xfs", "ext4")
    assert f"TYPE={fstype}\n" in probe
    assert "LABEL=DATA_DB\n" in probe


def test_mount_unit_written(host):
    """data-db.mount is in /etc/systemd/system and mounts by virtio serial."""
    unit = host.file("/etc/systemd/system/data-db.mount")
    assert unit.contains("^What=/dev/disk/by-id/virtio-DATA_DB$")
    assert unit.contains("^Where=/data/db$")


def test_mount_gated_by_disk_check(host):
    """data-db.mount requires appcore-disk@DATA_DB.service, which succeeded."""
    requires = host.run("systemctl show -p Requires --value data-db.mount").stdout
    assert "appcore-disk@DATA_DB.service" in requires
    assert host.service("appcore-disk@DATA_DB.service").is_running


def test_role_service_requires_the_mount(host):
    """appcore-selftest.service has RequiresMountsFor=/data/db and Requires appcore.service."""
    show = host.run(
        "systemctl show -p RequiresMountsFor -p Requires appcore-selftest.service"
    ).stdout
    assert "RequiresMountsFor=/data/db" in show
    assert "appcore.service" in show


def test_role_service_wrote_to_the_data_disk(host):
    """The SELFTEST service is enabled, ran, and its file lives on the data-disk filesystem."""
    assert host.service("appcore-selftest.service").is_enabled
    assert host.file("/data/db/selftest/started").is_file
    fs = host.run("findmnt -n -o TARGET --target /data/db/selftest/started").stdout.strip()
    assert fs == "/data/db"


def test_role_config_rendered(host):
    """The role config is rendered into the role's directory on the data disk, readable by the
    role's service user (mode 0644)."""
    with host.sudo():
        conf = host.file("/data/db/conf/selftest.conf")
        assert conf.contains("^role=SELFTEST$")
        assert conf.contains("^data_dir=/data/db$")
        assert conf.mode == 0o644


def test_role_pinned(host):
    """The first resolved role is pinned in /var/lib/appcore/pin.json (mode 0600)."""
    with host.sudo():
        pin = host.file("/var/lib/appcore/pin.json")
        assert pin.mode == 0o600
        assert json.loads(pin.content_string)["role"] == "SELFTEST"


def test_second_apply_changes_nothing(host):
    """Running `appcore apply` again succeeds and records no change."""
    with host.sudo():
        result = host.run("appcore apply")
    assert result.rc == 0
    assert state(host)["changes"] == []


def test_conflicting_role_fails_closed(host):
    """A different role in /etc/appcore/role conflicts with SMBIOS: dry-run exits 3."""
    with host.sudo():
        host.run("printf 'MYSQL_MASTER\\n' > /etc/appcore/role")
        try:
            result = host.run("appcore apply --dry-run")
        finally:
            host.run("rm -f /etc/appcore/role")
    assert result.rc == 3
    assert "conflicting roles ['MYSQL_MASTER', 'SELFTEST']" in result.stderr


def test_only_the_role_service_enabled(host):
    """No other role's service was enabled: there is no appcore drop-in for mysql.service."""
    assert not host.file("/etc/systemd/system/mysql.service.d/50-appcore.conf").exists


def test_journal_has_appcore_lines(host):
    """The boot run logged to the journal under the appcore identifier."""
    with host.sudo():
        out = host.run("journalctl -b -t appcore --no-pager -o cat").stdout
    assert '"role": "SELFTEST"' in out
