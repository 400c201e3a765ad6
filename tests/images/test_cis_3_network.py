"""CIS 3.x items covered by hardening/scripts (checked on the booted image)."""

import pytest

pytestmark = pytest.mark.image


def test_3_4_1_5_firewalld_default_zone(host):
    """firewalld's configured default zone is public."""
    assert host.file("/etc/firewalld/firewalld.conf").contains("^DefaultZone=public$")
    assert host.run("firewall-offline-cmd --get-default-zone").stdout.strip() == "public"
