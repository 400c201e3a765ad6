"""Fleet files accept only what a VM will accept: several clusters of one role, hostnames
App-Core takes at boot, and the test-only roles only with the test catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

# isort: off
import tests.appcore_path  # noqa: F401  (puts App-Core on sys.path: before its imports)
from appcore.apply import HOSTNAME
from appcore.catalogue import load_catalogue as appcore_catalogue
from appcore.discovery import VALUE, Finding, resolve

# isort: on
from imagefactory.errors import ConfigError
from imagefactory.fleet.config import APPCORE_HOSTNAME, CATALOGUE_DIR, load_fleet
from imagefactory.fleet.domain import VmSpec
from imagefactory.fleet.nodes import plan_fleet
from tests.fleetkit import group, hypervisor, write_fleet

HOSTS = {f"hv-{c}": hypervisor(f"test:///h{c}", "/srv/fleet") for c in "abc"}
PXC = ("DATA_DB", 100)


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_fleet(path)
    return [f"{p.path}: {p.message}" for p in err.value.problems]


def test_the_hostname_rule_is_app_cores() -> None:
    """The fleet judges hostnames with the same expression App-Core applies at boot."""
    assert APPCORE_HOSTNAME.pattern == HOSTNAME.pattern


def two_pxc_clusters(tmp_path: Path) -> Path:
    return write_fleet(
        tmp_path,
        HOSTS,
        {
            "pers-db-master": group("MYSQL_MASTER", "persistence", 3, "cluster", "pxc-main", PXC),
            "pers-db-master-eu": group("MYSQL_MASTER", "persistence", 3, "cluster", "pxc-eu", PXC),
        },
    )


def test_two_clusters_of_one_role_are_planned(tmp_path: Path) -> None:
    """Two PXC clusters of MYSQL_MASTER: each node's peers are its own cluster's three."""
    plan = plan_fleet(load_fleet(two_pxc_clusters(tmp_path)))
    main = {plan.nodes[f"pers-db-master-0{i}"].ip for i in (1, 2, 3)}
    eu = {plan.nodes[f"pers-db-master-eu-0{i}"].ip for i in (1, 2, 3)}
    assert set(plan.nodes["pers-db-master-02"].peers) == main
    assert set(plan.nodes["pers-db-master-eu-02"].peers) == eu
    assert not main & eu


def test_app_core_reads_each_node_of_a_second_cluster_as_its_role(tmp_path: Path) -> None:
    """App-Core's own discovery, given a node's SMBIOS strings and its hostname channel:
    role MYSQL_MASTER from both channels (no conflict), its own cluster and peers."""
    plan = plan_fleet(load_fleet(two_pxc_clusters(tmp_path)))
    catalogue = appcore_catalogue(str(CATALOGUE_DIR / "roles.json"))
    node = plan.nodes["pers-db-master-eu-03"]
    spec = VmSpec(node, plan.fleet, "qemu", "bios", Path("t"), "v", Path("o"), None)
    findings = [
        Finding("smbios", *s.removeprefix("appcore:").split("=", 1), "oem")
        for s in spec.oem_strings()
    ]
    by_name = [
        Finding("hostname", "role", r.id, "") for r in catalogue.roles_for_hostname(node.name)
    ]
    found = resolve(findings + by_name, catalogue)
    assert [f.value for f in by_name] == ["MYSQL_MASTER"]
    assert (found.role, found.params["cluster"], found.params["hostname"]) == (
        "MYSQL_MASTER",
        "pxc-eu",
        "pers-db-master-eu-03",
    )
    assert found.params["peers"] == ",".join(str(p) for p in node.peers)


def test_a_group_app_core_would_refuse_is_refused_by_name(tmp_path: Path) -> None:
    """A read-only group named like a second writers' cluster: App-Core's hostname channel
    would say MYSQL_MASTER against SMBIOS's MYSQL_READONLY, so the plan refuses the group."""
    path = write_fleet(
        tmp_path,
        HOSTS,
        {"pers-db-master-ro": group("MYSQL_READONLY", "persistence", 3, "cluster", "ro", PXC)},
    )
    assert problems(path) == [
        ".groups.pers-db-master-ro: node names like pers-db-master-ro-01 match App-Core's "
        "hostname pattern of MYSQL_MASTER: the VM would see conflicting roles"
    ]


def selftest_fleet(tmp_path: Path, **extra: str) -> Path:
    return write_fleet(
        tmp_path,
        HOSTS,
        {
            "selftest": group("SELFTEST", "standin-alpha", 3, "cluster", "st", PXC),
            "standin-db": group("STANDIN_GALERA", "standin-alpha", 3, "cluster", "sg", PXC),
        },
        **extra,
    )


def test_test_roles_are_refused_in_a_production_fleet(tmp_path: Path) -> None:
    """SELFTEST and STANDIN_GALERA without `catalogue: test`: one problem per group."""
    assert problems(selftest_fleet(tmp_path)) == [
        ".groups.selftest.role: SELFTEST is a test-only role (selftest-role.json, carried by "
        "the stand-in image only): a production fleet file may not use it",
        ".groups.standin-db.role: STANDIN_GALERA is a test-only role (selftest-role.json, "
        "carried by the stand-in image only): a production fleet file may not use it",
    ]


def test_test_roles_are_accepted_with_the_test_catalogue(tmp_path: Path) -> None:
    """The same groups load when the fleet file asks for the test catalogue."""
    fleet = load_fleet(selftest_fleet(tmp_path, catalogue="test"))
    assert sorted(g.role for g in fleet.groups.values()) == ["SELFTEST", "STANDIN_GALERA"]


def hazelcast_cluster(tmp_path: Path, members: int) -> Path:
    """One cluster on addresses of the longest form (15 characters: 192.168.100.1xx)."""
    pers_hz = group("HAZELCAST", "persistence", members, "cluster", "hz-big", ("DATA_MG", 1))
    network = {"subnet": "192.168.100.0/24", "gateway": "192.168.100.1", "first_host": 100}
    return write_fleet(tmp_path, HOSTS, {"pers-hz": pers_hz}, network=network)


def test_a_cluster_whose_peers_app_core_cannot_read_is_refused(tmp_path: Path) -> None:
    """16 members' addresses exceed App-Core's 253-character SMBIOS value: refused at plan."""
    with pytest.raises(ConfigError) as err:
        plan_fleet(load_fleet(hazelcast_cluster(tmp_path, 16)))
    (problem,) = err.value.problems
    assert (problem.path, problem.message.split(";")[0]) == (
        ".groups.pers-hz",
        "cluster hz-big: the 16 members' addresses make an appcore:peers value of 255 characters",
    )


def test_fifteen_members_fit_app_cores_peers_value(tmp_path: Path) -> None:
    """15 members (239 characters) plan, and App-Core's own rule accepts their peers value."""
    plan = plan_fleet(load_fleet(hazelcast_cluster(tmp_path, 15)))
    value = ",".join(str(ip) for ip in plan.nodes["pers-hz-01"].peers)
    assert (len(value), VALUE.match(value) is not None) == (239, True)
