"""CIS 6.x items covered by hardening/scripts (checked on the booted image)."""

import pytest

pytestmark = pytest.mark.image


def duplicates(host, field):
    values = [
        line.split(":")[field] for line in host.file("/etc/group").content_string.splitlines()
    ]
    return sorted({v for v in values if values.count(v) > 1})


def test_6_2_4_group_gids_unique(host):
    """No two groups in /etc/group share a GID."""
    assert duplicates(host, 2) == []


def test_6_2_6_group_names_unique(host):
    """No two groups in /etc/group share a name."""
    assert duplicates(host, 0) == []
