"""Specs of the stand-in stack layers: standin-alpha carries stack-alpha, standin-beta carries
stack-beta, and neither carries the other's. One module for both families: the verifier names
the family it verifies in IF_VERIFY_FAMILY, and the image's release file must agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

pytestmark = pytest.mark.image


@dataclass(frozen=True)
class Stack:
    layer: str  # the entry on the release file's LAYERS line
    service: str
    config: str
    config_text: str
    other_unit: str  # the other family's stack unit, which must not be in this image


STACKS = {
    "standin-alpha": Stack(
        layer="stack-alpha",
        service="alpha",
        config="/etc/alpha/alpha.conf",
        config_text="stack=alpha\n",
        other_unit="/etc/systemd/system/beta.service",
    ),
    "standin-beta": Stack(
        layer="stack-beta",
        service="beta",
        config="/etc/beta/beta.conf",
        config_text="stack=beta\n",
        other_unit="/etc/systemd/system/alpha.service",
    ),
}


@pytest.fixture(scope="module")
def stack(host):
    """The stack of the family being verified; the image's LAYERS line must list it."""
    family = os.environ.get("IF_VERIFY_FAMILY", "")
    assert family in STACKS, f"IF_VERIFY_FAMILY={family!r} is not a stand-in family"
    release = host.file("/etc/imagefactory/release").content_string
    lines = [ln for ln in release.splitlines() if ln.startswith("LAYERS=")]
    assert len(lines) == 1, f"no single LAYERS line in /etc/imagefactory/release: {release!r}"
    assert STACKS[family].layer in lines[0].removeprefix("LAYERS=").split(",")
    return STACKS[family]


def test_stack_service_running(host, stack):
    """The family's stack service is enabled and running."""
    svc = host.service(stack.service)
    assert svc.is_enabled
    assert svc.is_running


def test_stack_config(host, stack):
    """The family's stack config file says which stack it is."""
    assert host.file(stack.config).content_string == stack.config_text


def test_no_other_stack_here(host, stack):
    """The other family's stack is not in this image."""
    assert not host.file(stack.other_unit).exists
