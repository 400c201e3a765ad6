"""CIS 4.x items covered by hardening/scripts (checked on the booted image)."""

import pytest

pytestmark = pytest.mark.image

JOURNALD_CONF = "/etc/systemd/journald.conf"


def test_4_2_1_3_journald_forwards_to_syslog(host):
    """journald forwards messages to rsyslog."""
    assert host.file(JOURNALD_CONF).contains("^ForwardToSyslog=yes$")


def test_4_2_2_3_journald_compresses(host):
    """journald compresses large journal files."""
    assert host.file(JOURNALD_CONF).contains("^Compress=yes$")


def test_4_2_2_4_journald_persistent_storage(host):
    """journald stores the journal on disk under /var/log/journal."""
    assert host.file(JOURNALD_CONF).contains("^Storage=persistent$")
    assert host.file("/var/log/journal").is_directory
