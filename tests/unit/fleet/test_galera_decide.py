"""Which Galera member bootstraps: only the one with the most committed data, never a stale or
empty one, and nothing at all while a member is unaccounted for."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.fleet import commands
from imagefactory.fleet.galera import ZERO_UUID, ClusterError, Report, decide
from imagefactory.fleet.hypervisor import FleetError
from imagefactory.fleet.model import Fleet
from imagefactory.fleet.nodes import Node
from tests.fleetkit import production_with

UUID = "3f1c2d4e-5a6b-11f1-8a7c-0242ac120002"
OTHER = "9a8b7c6d-5e4f-11f1-9d3c-0242ac120003"
EMPTY = Report(ZERO_UUID, -1)


def test_a_new_cluster_bootstraps_the_first_member_by_name() -> None:
    """Nobody has data: the first name bootstraps, the others join in name order."""
    d = decide({"db-02": EMPTY, "db-01": EMPTY, "db-03": EMPTY})
    assert (d.bootstrap, d.joins) == ("db-01", ("db-02", "db-03"))


def test_the_highest_seqno_bootstraps() -> None:
    """After a crash the member that committed most is chosen, wherever it is in name order."""
    d = decide({"db-01": Report(UUID, 10), "db-02": Report(UUID, 12), "db-03": Report(UUID, 11)})
    assert (d.bootstrap, d.joins) == ("db-02", ("db-01", "db-03"))
    assert d.why == "highest committed seqno 12"


def test_a_tie_prefers_the_member_marked_safe_to_bootstrap() -> None:
    """After a clean stop of all, only the last to stop is marked: it wins a tie."""
    d = decide({"db-01": Report(UUID, 7), "db-02": Report(UUID, 7, safe_to_bootstrap=True)})
    assert d.bootstrap == "db-02"


def test_an_empty_member_never_bootstraps_while_another_has_data() -> None:
    """A replaced blank disk (no grastate) joins; it does not start an empty cluster."""
    d = decide({"db-01": EMPTY, "db-02": Report(UUID, 3)})
    assert (d.bootstrap, d.joins) == ("db-02", ("db-01",))


def test_a_silent_member_stops_the_decision() -> None:
    """Unreachable: it may hold the newest data; the message names it and the way out."""
    with pytest.raises(ClusterError) as err:
        decide({"db-01": Report(UUID, 5), "db-02": None})
    assert "db-02: did not report" in str(err.value)
    assert "--gone=db-02" in str(err.value)


def test_a_member_named_gone_is_left_out() -> None:
    """The operator's word that a member is lost: the rest decide."""
    d = decide({"db-01": Report(UUID, 5), "db-02": None}, frozenset({"db-02"}))
    assert (d.bootstrap, d.joins) == ("db-01", ())


def test_gone_must_name_a_member() -> None:
    with pytest.raises(ClusterError, match="--gone names no member of this cluster"):
        decide({"db-01": Report(UUID, 5)}, frozenset({"db-09"}))


def test_no_empty_cluster_when_the_data_went_with_a_gone_member() -> None:
    """The only member with data is gone and the rest are empty: refused, not an empty start."""
    with pytest.raises(ClusterError, match="no remaining member has data"):
        decide({"db-01": EMPTY, "db-02": None}, frozenset({"db-02"}))


def test_members_of_different_histories_are_refused() -> None:
    """Two cluster uuids: whichever were chosen, the other's writes would be thrown away."""
    with pytest.raises(ClusterError, match="different clusters") as err:
        decide({"db-01": Report(UUID, 5), "db-02": Report(OTHER, 9)})
    assert f"db-01: {UUID}:5" in str(err.value) and f"db-02: {OTHER}:9" in str(err.value)


def test_an_unknown_position_is_refused() -> None:
    """seqno -1 with a cluster uuid: --wsrep-recover found nothing; never guessed."""
    with pytest.raises(ClusterError, match="position unknown for db-02"):
        decide({"db-01": Report(UUID, 5), "db-02": Report(UUID, -1)})


def test_a_running_primary_component_is_joined_not_bootstrapped() -> None:
    """One member still runs in a Primary component: no second bootstrap, the others join."""
    up = Report(UUID, 40, running=True, primary=True)
    d = decide({"db-01": Report(UUID, 41), "db-02": up, "db-03": EMPTY})
    assert (d.bootstrap, d.joins) == (None, ("db-01", "db-03"))


def test_members_running_without_a_primary_component_are_refused() -> None:
    """Running but non-Primary: their live state is not a stored position; stop them first."""
    with pytest.raises(ClusterError, match="outside a Primary component"):
        decide({"db-01": Report(UUID, 5, running=True), "db-02": Report(UUID, 6)})


class Recorded:
    """A member answering from a recorded report (what `appcore galera position` printed)."""

    def __init__(self, name: str, report: Report | None) -> None:
        self.name = name
        self._report = report

    def report(self) -> Report | None:
        return self._report

    def bootstrap(self, expect: Report) -> None:
        raise AssertionError("a dry run starts nothing")

    def join(self) -> None:
        raise AssertionError("a dry run starts nothing")

    def ready(self) -> list[str]:
        return ["not running"]


def test_recover_dry_run_names_each_position_and_the_choice(tmp_path: Path) -> None:
    """`fleet.recover --dry-run` on the production fleet's PXC cluster (8 members)."""
    fleet_file = production_with(tmp_path, 6)

    def members(fleet: Fleet, nodes: list[Node]) -> list[Recorded]:
        seqnos = {n.name: 100 + i for i, n in enumerate(sorted(nodes, key=lambda n: n.name))}
        return [Recorded(n.name, Report(UUID, seqnos[n.name])) for n in nodes]

    text = commands.recover(fleet_file, "pxc-main", dry_run=True, members=members)
    lines = text.splitlines()
    assert len(lines) == 10
    assert lines[0] == f"pers-db-master-01: {UUID}:100"
    assert lines[-2] == "would bootstrap pers-db-ro-03 (highest committed seqno 107)"
    assert lines[-1].startswith("then join, one at a time: pers-db-master-01, ")


def test_recover_refuses_a_cluster_that_is_not_galera(tmp_path: Path) -> None:
    with pytest.raises(FleetError, match="ds-main is not a Galera cluster"):
        commands.recover(production_with(tmp_path, 6), "ds-main", dry_run=True)
