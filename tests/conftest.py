"""Session fixtures shared by every test directory. Helpers live in plain modules
(tests/prereq.py for missing prerequisites, tests/*kit.py), never imported from here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.prereq import require_root, require_tools


@pytest.fixture(scope="session")
def libvirtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One real libvirtd for the session, in its own network and mount namespaces
    (tests/libvirtd.py); stopped, with every domain it runs, at the end."""
    from tests.libvirtd import start_libvirtd, stop_libvirtd

    require_tools("libvirtd", "virsh", "unshare", "nsenter", "ip")
    require_root("a system-mode libvirtd in its own namespaces")
    daemon = start_libvirtd(tmp_path_factory.mktemp("libvirtd"))
    yield daemon
    stop_libvirtd(daemon)
