"""Specs of the stand-in families: their layers' work is present after sealing."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.image


def test_os_is_debian_12(host):
    """The stand-in guest is Debian 12."""
    assert host.system_info.distribution == "debian"
    assert host.system_info.release.startswith("12")


def test_shared_layer_release_file(host):
    """The shared layer wrote the release file and the stack layer appended itself."""
    release = host.file("/etc/imagefactory/release")
    assert release.contains("^NAME=imagefactory-standin$")
    assert release.contains("^LAYERS=common,stack-")


def test_access_hook_enabled(host):
    """The boot-time key hook is enabled for every boot."""
    assert host.service("imagefactory-access-keys").is_enabled
