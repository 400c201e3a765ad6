"""CIS 2.x items covered by hardening/scripts (checked on the booted image)."""

import pytest

pytestmark = pytest.mark.image


def test_2_1_2_chronyd_runs_unprivileged(host):
    """chronyd runs as the chrony user (EL: chrony, Debian stand-in: _chrony), never root."""
    procs = host.process.filter(comm="chronyd")
    assert procs
    assert {p.user for p in procs} <= {"chrony", "_chrony"}


def test_2_2_10_http_server_not_installed(host):
    """No HTTP server package is installed."""
    assert not host.package("httpd").is_installed
    assert not host.package("apache2").is_installed


def test_2_2_11_imap_pop3_server_not_installed(host):
    """No IMAP/POP3 server package is installed."""
    assert not host.package("dovecot").is_installed
    assert not host.package("dovecot-core").is_installed


def test_2_2_12_samba_not_installed(host):
    """The Samba server package is not installed."""
    assert not host.package("samba").is_installed


def test_2_2_18_nfs_server_masked(host):
    """nfs-server.service is masked or not installed at all."""
    state = host.run("systemctl show -p LoadState --value nfs-server.service").stdout.strip()
    assert state in ("masked", "not-found")
