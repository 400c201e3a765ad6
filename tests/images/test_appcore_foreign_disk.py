"""App-Core with a data disk that already holds someone else's filesystem: hands off.

Booted twice by tests/e2e/test_standin_roles.py: ext4 FOREIGN on the whole disk, and ext4
FOREIGN in a partition at 1 MiB whose partition table was wiped (nothing at offset 0)."""

import json

import pytest

pytestmark = pytest.mark.image


def test_appcore_failed_closed(host):
    """appcore.service failed instead of configuring the role."""
    result = host.run("systemctl show -p Result --value appcore.service").stdout.strip()
    assert result != "success"


def test_state_says_why(host):
    """state.json records that the role stayed unconfigured because of the disk."""
    doc = json.loads(host.file("/run/appcore/state.json").content_string)
    assert doc["status"] != "configured"
    assert "DATA_DB" in json.dumps(doc)


def test_data_disk_not_mounted(host):
    """Nothing is mounted at /data/db."""
    assert not host.mount_point("/data/db").exists


def test_state_names_the_foreign_filesystem(host):
    """The recorded error names what was found on the disk: ext4, labelled FOREIGN."""
    error = json.loads(host.file("/run/appcore/state.json").content_string)["error"]
    assert "ext4" in error and "'FOREIGN'" in error


def test_foreign_filesystem_untouched(host):
    """The disk still carries ext4 labelled FOREIGN, at offset 0 or at 1 MiB (wiped table)."""
    with host.sudo():
        at_0 = host.run("blkid -p -o export /dev/disk/by-id/virtio-DATA_DB").stdout
        at_1mib = host.run("blkid -p -o export -O 1048576 /dev/disk/by-id/virtio-DATA_DB").stdout
    assert "LABEL=FOREIGN\n" in at_0 + at_1mib


def test_role_service_not_started(host):
    """The SELFTEST role service did not run."""
    assert not host.service("appcore-selftest.service").is_running
