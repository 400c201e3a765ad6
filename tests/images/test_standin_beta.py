"""Specs of stand-in family beta."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.image


def test_beta_service_running(host):
    """The beta stack service is enabled and running."""
    svc = host.service("beta")
    assert svc.is_enabled
    assert svc.is_running


def test_beta_config(host):
    """The beta stack config file says which stack it is."""
    assert host.file("/etc/beta/beta.conf").content_string == "stack=beta\n"


def test_no_alpha_here(host):
    """The other family's stack is not in this image."""
    assert not host.file("/etc/systemd/system/alpha.service").exists
