"""A real Galera 4 cluster without VMs: three mariadbd processes on 127.0.X.1-3 (tests/galerakit.py)
driven by App-Core's Galera code (appcore/galera.py) and the fleet's decisions
(imagefactory/fleet/galera.py): formation from one bootstrap, readiness, and recovery after a
power cut of every member from the member that committed most, never from a stale one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from appcore.runner import Runner

from appcore import galera
from imagefactory.fleet.galera import ClusterError, Report, decide, form
from tests.galerakit import LocalMember, Node, flavour, running_cluster, stop_all

pytestmark = pytest.mark.integration
APPCORE_SRC = Path(__file__).resolve().parents[3] / "appcore" / "src"


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[Node]]:
    with running_cluster(tmp_path / "galera") as made:
        yield made


def fleet_of(nodes: list[Node], runner: Runner) -> list[LocalMember]:
    return [LocalMember(n, len(nodes), runner) for n in nodes]


def bootstraps(runner: Runner) -> list[list[str]]:
    return [argv for argv in runner.history if "--wsrep-new-cluster" in argv]


def rows(node: Node) -> list[int]:
    return [int(v) for v in node.sql("SELECT id FROM t.r ORDER BY id").split()]


def write_rows(node: Node, first: int, count: int) -> list[int]:
    ids = list(range(first, first + count))
    node.sql("INSERT INTO t.r (id) VALUES " + ",".join(f"({i})" for i in ids))
    return ids


def test_a_new_cluster_forms_from_exactly_one_bootstrap(nodes: list[Node]) -> None:
    """No member has data: the first by name bootstraps, the others join one at a time;
    every member ends Primary, Synced, size 3, with one cluster state uuid."""
    runner = Runner()
    said: list[str] = []
    decision = form(fleet_of(nodes, runner), timeout_s=240, say=said.append)
    assert (decision.bootstrap, decision.joins) == ("n1", ("n2", "n3"))
    assert len(bootstraps(runner)) == 1
    uuids = set()
    for node in nodes:
        status = galera.Member(Runner(), flavour(node), str(node.cnf), str(node.datadir)).status()
        assert galera.readiness(status, 3) == [], node.name
        uuids.add(status["wsrep_cluster_state_uuid"])
    assert len(uuids) == 1
    assert said[-3:] == ["n1: ready", "n2: ready", "n3: ready"]
    # Formed: a second run bootstraps nothing and starts nothing.
    again = form(fleet_of(nodes, runner), timeout_s=60, say=said.append)
    assert again.bootstrap is None and len(bootstraps(runner)) == 1


def test_a_cluster_forms_on_fresh_data_disks(tmp_path: Path) -> None:
    """No data directory at all (a fresh data disk): App-Core makes it, initialises the
    bootstrap member's system tables, and the others are filled by the state transfer."""
    with running_cluster(tmp_path / "galera", initialised=False) as fresh:
        assert not any(n.datadir.exists() for n in fresh)
        runner = Runner()
        decision = form(fleet_of(fresh, runner), timeout_s=240, say=lambda _: None)
        assert (decision.bootstrap, decision.joins) == ("n1", ("n2", "n3"))
        inits = [a for a in runner.history if a[0] == "mariadb-install-db"]
        assert inits == [
            [
                "mariadb-install-db",
                f"--defaults-file={fresh[0].cnf}",
                "--user=mysql",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ]
        ]
        fresh[0].sql("CREATE DATABASE t; CREATE TABLE t.r (id INT PRIMARY KEY) ENGINE=InnoDB")
        write_rows(fresh[0], 1, 3)
        assert [rows(n) for n in fresh] == [[1, 2, 3]] * 3


def test_power_cut_recovers_from_the_member_that_committed_most(nodes: list[Node]) -> None:
    """n1 dies first (stale), n2 stops cleanly later, n3 commits more and then every member
    loses power: the fleet bootstraps n3 (never n1 or n2) and no acknowledged row is lost."""
    form(fleet_of(nodes, Runner()), timeout_s=240, say=lambda _: None)
    n1, n2, n3 = nodes
    n1.sql("CREATE DATABASE t; CREATE TABLE t.r (id INT PRIMARY KEY) ENGINE=InnoDB")
    acked = write_rows(n1, 1, 10)
    n1.stop(signal.SIGKILL)
    acked += write_rows(n2, 11, 10)
    n2.stop(signal.SIGTERM)  # a clean leave: n3 stays Primary alone
    acked += write_rows(n3, 21, 10)
    n3.stop(signal.SIGKILL)

    members = fleet_of(nodes, Runner())
    reports = {m.name: m.report() for m in members}
    seqnos = {name: r.seqno for name, r in reports.items() if r is not None}
    assert seqnos["n1"] < seqnos["n2"] < seqnos["n3"], seqnos
    runner = Runner()
    decision = form(fleet_of(nodes, runner), timeout_s=240, say=lambda _: None)
    assert decision.bootstrap == "n3"
    assert [a for a in bootstraps(runner) if str(n3.cnf) in " ".join(a)] == bootstraps(runner)
    for node in nodes:
        assert rows(node) == acked, node.name


def test_a_stale_or_empty_member_is_never_the_bootstrap_node(nodes: list[Node]) -> None:
    """After a power cut, a member re-made empty (a replaced disk) and one that stopped early
    report less data: the member with the most committed writes is chosen."""
    form(fleet_of(nodes, Runner()), timeout_s=240, say=lambda _: None)
    n1, n2, n3 = nodes
    n2.sql("CREATE DATABASE t; CREATE TABLE t.r (id INT PRIMARY KEY) ENGINE=InnoDB")
    n3.stop(signal.SIGKILL)  # stale: misses what follows
    acked = write_rows(n2, 1, 5)
    stop_all([n1, n2])
    subprocess.run(["rm", "-rf", str(n1.datadir)], check=True)  # a blank replacement disk
    subprocess.run(
        ["mariadb-install-db", f"--defaults-file={n1.cnf}", "--user=root"],
        check=True,
        capture_output=True,
    )
    reports = {m.name: m.report() for m in fleet_of(nodes, Runner())}
    assert reports["n1"] is not None and not reports["n1"].has_data
    decision = decide(reports)
    assert decision.bootstrap == "n2", decision
    # With n2 declared gone, n3 (stale but with data) is the only one: chosen, not empty n1.
    assert decide(reports, frozenset({"n2"})).bootstrap == "n3"
    form(fleet_of(nodes, Runner()), timeout_s=240, say=lambda _: None)
    for node in nodes:
        assert rows(node) == acked, node.name


def test_bootstrap_refuses_a_member_whose_position_moved(nodes: list[Node]) -> None:
    """App-Core re-reads its position right before bootstrapping: a decision made on an
    older report is refused and nothing starts."""
    member = fleet_of(nodes, Runner())[0]
    with pytest.raises(galera.GaleraError, match="refusing to bootstrap"):
        member.bootstrap(Report("6b5c7c2e-0000-11f1-8000-000000000001", 42))
    assert member.member.status() == {}


def test_an_unreachable_member_blocks_recovery_unless_named_gone(nodes: list[Node]) -> None:
    """One member does not answer: nothing is decided until the operator names it."""
    reports: dict[str, Report | None] = {m.name: m.report() for m in fleet_of(nodes, Runner())}
    reports["n2"] = None
    with pytest.raises(ClusterError, match="--gone=n2"):
        decide(reports)
    # Named gone, but nobody left has data: an empty cluster would replace what n2 held.
    with pytest.raises(ClusterError, match="no remaining member has data"):
        decide(reports, frozenset({"n2"}))


def test_appcore_cli_reports_position_and_readiness(nodes: list[Node]) -> None:
    """`appcore galera position` and `ready` as the fleet runs them over SSH (JSON, exit codes)."""
    node = nodes[0]
    argv = [sys.executable, "-m", "appcore", "galera"]
    opts = ["--flavour=mariadb", f"--defaults-file={node.cnf}", f"--datadir={node.datadir}"]
    env = {"PYTHONPATH": str(APPCORE_SRC), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    pos = subprocess.run([*argv, "position", *opts], capture_output=True, text=True, env=env)
    assert pos.returncode == 0, pos.stderr
    assert Report.from_json(json.loads(pos.stdout)).label().startswith("no data")
    ready = subprocess.run(
        [*argv, "ready", *opts, "--members=3"], capture_output=True, text=True, env=env
    )
    assert ready.returncode == 3
    assert '"problems": ["the server is not running"]' in ready.stdout


def test_a_member_killed_right_after_its_state_transfer_still_has_data(
    nodes: list[Node],
) -> None:
    """Killed before its grastate.dat was updated after the state transfer, a member's file
    still says "never joined" (seen in CI): its position comes from the storage engine, so it
    is never taken for an empty member."""
    form(fleet_of(nodes, Runner()), timeout_s=240, say=lambda _: None)
    n1, _, n3 = nodes
    n1.sql("CREATE DATABASE t; CREATE TABLE t.r (id INT PRIMARY KEY) ENGINE=InnoDB")
    write_rows(n1, 1, 3)
    uuid = n1.sql("SHOW STATUS LIKE 'wsrep_cluster_state_uuid'").split()[1]
    n3.stop(signal.SIGKILL)
    (n3.datadir / "grastate.dat").write_text(
        "# GALERA saved state\nversion: 2.1\n"
        "uuid:    00000000-0000-0000-0000-000000000000\nseqno:   -1\nsafe_to_bootstrap: 0\n"
    )
    report = LocalMember(n3, 3, Runner()).report()
    assert report is not None and report.has_data and report.uuid == uuid
