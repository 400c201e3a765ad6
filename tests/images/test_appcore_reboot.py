"""App-Core after a reboot of the same VM (same role, same data disk): nothing changes."""

import json

import pytest

pytestmark = pytest.mark.image


def test_boot_run_changed_nothing(host):
    """The boot-time run found everything in place and recorded no change."""
    doc = json.loads(host.file("/run/appcore/state.json").content_string)
    assert doc["status"] == "configured"
    assert doc["changes"] == []


def test_data_from_first_boot_is_still_there(host):
    """The file the role service wrote on the first boot survived: the disk was not reformatted."""
    with host.sudo():
        assert host.file("/data/db/conf/selftest.conf").contains("^role=SELFTEST$")
    assert host.mount_point("/data/db").exists
