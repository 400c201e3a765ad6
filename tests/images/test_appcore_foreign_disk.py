"""App-Core with a data disk that already holds someone else's filesystem: hands off."""

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


def test_foreign_filesystem_untouched(host):
    """The disk still carries its original label FOREIGN."""
    with host.sudo():
        probe = host.run("blkid -p -o export /dev/disk/by-id/virtio-DATA_DB").stdout
    assert "LABEL=FOREIGN\n" in probe


def test_role_service_not_started(host):
    """The SELFTEST role service did not run."""
    assert not host.service("appcore-selftest.service").is_running
