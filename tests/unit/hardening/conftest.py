"""Fixtures for the hardening unit tests."""

from __future__ import annotations

import pytest
from hardening_builders import bench, rule

from imagefactory.hardening.datastream import VALUE_PREFIX, Benchmark


@pytest.fixture
def pair() -> tuple[Benchmark, Benchmark]:
    """RHEL8-like source (5 selected rules, one refine-value) and OL8-like target lacking two."""
    umask = VALUE_PREFIX + "var_umask"
    source = bench(
        "ssg-rhel8-ds.xml",
        [
            rule("aide_build_database", ("1.3.1",)),
            rule("sshd_set_idle_timeout", ("5.2.16",)),
            rule("grub2_password", ("1.4.1",), bash=False),
            rule("file_owner_crontab", ("5.1.2",)),
            rule("journald_storage", ("4.2.2.4",)),
            rule("unselected_rule", ("9.9",)),
        ],
        selected=(
            "aide_build_database",
            "sshd_set_idle_timeout",
            "grub2_password",
            "file_owner_crontab",
            "journald_storage",
        ),
        refine=((umask, "027"),),
        values={umask: frozenset({"022", "027"})},
    )
    target = bench(
        "ssg-ol8-ds.xml",
        [
            rule("aide_build_database", ()),
            rule("sshd_set_idle_timeout", ()),
            rule("grub2_password", (), bash=False),
            rule("unselected_rule", ()),
        ],
        values={umask: frozenset({"022", "027"})},
    )
    return source, target
