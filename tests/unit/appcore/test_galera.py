"""App-Core's Galera member on recorded answers: grastate.dat, --wsrep-recover's log line and
`SHOW GLOBAL STATUS LIKE 'wsrep_%'` (values as MariaDB 10.11 and PXC 8.0 print them). Each
unhealthy answer is one a running, "active" service gives while the member is not ready."""

from __future__ import annotations

import pytest

from appcore import galera

UUID = "139d51f5-f1cd-11f1-bdd4-a78be2f0993c"
SYNCED: dict[str, str] = {
    "wsrep_cluster_status": "Primary",
    "wsrep_local_state": "4",
    "wsrep_local_state_comment": "Synced",
    "wsrep_ready": "ON",
    "wsrep_connected": "ON",
    "wsrep_cluster_size": "3",
    "wsrep_cluster_state_uuid": UUID,
    "wsrep_last_committed": "112",
}


def test_grastate_after_a_clean_stop() -> None:
    """The last member to stop is marked safe to bootstrap, with its seqno."""
    text = (
        f"# GALERA saved state\nversion: 2.1\nuuid:    {UUID}\nseqno:   5\nsafe_to_bootstrap: 1\n"
    )
    assert galera.read_grastate(text) == galera.Position(UUID, 5, True, "grastate")


def test_grastate_after_a_crash_has_no_position() -> None:
    """seqno -1: the position must be recovered from the storage engine."""
    text = (
        f"# GALERA saved state\nversion: 2.1\nuuid:    {UUID}\nseqno:   -1\nsafe_to_bootstrap: 0\n"
    )
    position = galera.read_grastate(text)
    assert (position.seqno, position.has_data) == (-1, False)


def test_recovered_position_from_the_error_log() -> None:
    """MariaDB writes `WSREP: Recovered position: UUID:SEQNO` to --log-error."""
    log = (
        "2026-12-06 23:32:11 0 [Note] InnoDB: Buffer pool(s) load completed\n"
        f"2026-12-06 23:32:11 0 [Note] WSREP: Recovered position: {UUID}:11\n"
    )
    assert galera.parse_recovered(log) == galera.Position(UUID, 11, False, "wsrep-recover")


def test_no_recovered_position() -> None:
    assert galera.parse_recovered("[ERROR] Aborting\n") is None


def test_a_synced_member_of_a_full_cluster_is_ready() -> None:
    assert galera.readiness(SYNCED, 3) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {
                "wsrep_local_state": "1",
                "wsrep_local_state_comment": "Joining: receiving State Transfer",
            },
            "not synced: joining (wsrep_local_state=1, Joining: receiving State Transfer)",
        ),
        (
            {"wsrep_local_state": "2", "wsrep_local_state_comment": "Donor/Desynced"},
            "not synced: donor/desynced (wsrep_local_state=2, Donor/Desynced)",
        ),
        (
            {"wsrep_cluster_status": "non-Primary", "wsrep_ready": "OFF"},
            "not in a Primary component (wsrep_cluster_status=non-Primary)",
        ),
        ({"wsrep_cluster_size": "2"}, "cluster size 2, expected 3 members"),
        ({"wsrep_connected": "OFF"}, "wsrep_connected=OFF"),
    ],
)
def test_a_running_member_that_is_not_ready(change: dict[str, str], problem: str) -> None:
    """Each answer comes from a server whose service is active: the old gate passed it."""
    assert problem in galera.readiness({**SYNCED, **change}, 3)


def test_a_stopped_server_is_not_ready() -> None:
    assert galera.readiness({}, 3) == ["the server is not running"]


def test_ready_report_names_the_cluster_state() -> None:
    report = galera.ready_report(SYNCED, 3)
    assert report == {
        "ready": True,
        "problems": [],
        "cluster_state_uuid": UUID,
        "cluster_size": "3",
        "local_state": "Synced",
        "last_committed": "112",
    }
