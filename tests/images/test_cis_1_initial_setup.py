"""CIS 1.x items covered by hardening/scripts (checked on the booted image)."""

import pytest

pytestmark = pytest.mark.image


def test_1_1_1_3_udf_module_disabled(host):
    """The udf module is disabled in modprobe.d and not loaded."""
    conf = host.file("/etc/modprobe.d/cis-udf.conf")
    assert conf.contains("^install udf /bin/false$")
    assert conf.contains("^blacklist udf$")
    # Full path: the login user's PATH has no sbin on Debian (/sbin is /usr/sbin on both OSes).
    assert "install /bin/false" in host.run("/sbin/modprobe -n -v udf").stdout
    assert not host.run("grep -q '^udf ' /proc/modules").succeeded
