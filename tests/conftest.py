"""Shared test helpers: a missing prerequisite fails in CI and skips (with a reason) locally."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from imagefactory.util.tools import which

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(*names: str) -> None:
    missing = [n for n in names if which(n) is None]
    if missing:
        msg = f"required tool(s) not installed: {', '.join(missing)}"
        if IN_CI:
            pytest.fail(msg + " (CI must install them: see .ci/run)")
        pytest.skip(msg)


@pytest.fixture(scope="session")
def libvirtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One real libvirtd for the session, in its own network and mount namespaces
    (tests/libvirtd.py); stopped, with every domain it runs, at the end."""
    from tests.libvirtd import start_libvirtd, stop_libvirtd

    require_tool("libvirtd", "virsh", "unshare", "nsenter", "ip")
    if os.geteuid() != 0:
        pytest.fail("a system-mode libvirtd in its own namespaces needs root")
    daemon = start_libvirtd(tmp_path_factory.mktemp("libvirtd"))
    yield daemon
    stop_libvirtd(daemon)
