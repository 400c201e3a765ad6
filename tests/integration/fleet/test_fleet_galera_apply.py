"""fleet.apply forms the Galera cluster it creates: the VMs on three simulated hypervisors
(libvirt's test driver), the members' databases three real mariadbd on 127.0.X.1-3
(tests/galerakit.py) reached through App-Core's Galera code instead of SSH."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imagefactory.fleet import commands
from imagefactory.fleet.galera import GaleraMember
from imagefactory.fleet.hypervisor import Connections
from imagefactory.fleet.model import Fleet
from imagefactory.fleet.nodes import Node
from tests.fleetkit import TemplateStore, group, three_simulated_hosts, write_fleet
from tests.galerakit import LocalMember, Runner, running_cluster
from tests.galerakit import Node as DbNode
from tests.rolloutkit import SMALL

pytestmark = pytest.mark.integration


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[list[DbNode]]:
    with running_cluster(tmp_path / "galera") as made:
        yield made


def test_apply_forms_a_new_galera_cluster_once(
    tmp_path: Path, template_store: TemplateStore, databases: list[DbNode]
) -> None:
    """Three MYSQL_MASTER VMs created: the first bootstraps, the others join; every member
    ready with three in. A second apply creates nothing and starts nothing."""
    hosts = three_simulated_hosts(tmp_path)
    path = write_fleet(
        tmp_path,
        hosts,
        {
            "pers-db-master": group(
                "MYSQL_MASTER", "persistence", 3, "cluster", "pxc-x", ("DATA_DB", 2), **SMALL
            )
        },
        store=template_store.store_section(),
    )
    template_store.publish("persistence", tmp_path / "sealed", day=24)
    reached: list[LocalMember] = []
    runner = Runner()  # every App-Core call of this test, in order

    def members(fleet: Fleet, nodes: list[Node]) -> list[GaleraMember]:
        assert [n.name for n in nodes] == [f"pers-db-master-0{i}" for i in (1, 2, 3)]
        made = [LocalMember(db, len(nodes), runner) for db in databases]
        for member, node in zip(made, nodes, strict=True):
            member.name = node.name
        reached.extend(made)
        return list(made)

    conns = Connections()
    try:
        report = commands.apply(path, conns=conns, members=members)
        assert report.count("created") == 3
        assert len(reached) == 3
        for member in reached:
            assert member.ready() == [], member.name
        bootstraps = [a for a in runner.history if "--wsrep-new-cluster" in a]
        assert len(bootstraps) == 1
        again = commands.apply(path, conns=conns, members=members)
        assert again.count("created") == 0 and len(reached) == 3
    finally:
        conns.close()
