"""Specs of stand-in family alpha."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.image


def test_alpha_service_running(host):
    """The alpha stack service is enabled and running."""
    svc = host.service("alpha")
    assert svc.is_enabled
    assert svc.is_running


def test_alpha_config(host):
    """The alpha stack config file says which stack it is."""
    assert host.file("/etc/alpha/alpha.conf").content_string == "stack=alpha\n"


def test_no_beta_here(host):
    """The other family's stack is not in this image."""
    assert not host.file("/etc/systemd/system/beta.service").exists
