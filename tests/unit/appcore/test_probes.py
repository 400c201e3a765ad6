"""Readiness and pre-stop probes for ScyllaDB, Redpanda and Hazelcast, judged on recorded answers.

None of the three servers can run here, so every answer comes from tests/unit/appcore/recordings
(the README there names the source of each format). Each recording's problems are written out
literally; a healthy recording has none.
"""

import json
from pathlib import Path
from typing import Any

import pytest
from appcore.probes import (
    hazelcast_ready,
    parse_nodetool_status,
    redpanda_maintenance_done,
    redpanda_ready,
    scylla_drained,
    scylla_ready,
)

RECORDINGS = Path(__file__).parent / "recordings"
SCYLLA_SELF = "10.20.0.11"
SCYLLA_MEMBERS = ["10.20.0.11", "10.20.0.12", "10.20.0.13"]
REDPANDA_MEMBERS = [0, 1, 2]
HAZELCAST_MEMBERS = ["hz-1", "hz-2", "hz-3"]
V1 = "7d1f3c2a-64e9-3b0d-9a5c-1e8f2b7d4a60"
V2 = "b25e9a41-0c7d-3f18-8e63-4d2a9c1b5f07"


def answers(system: str, case: str) -> dict[str, Any]:
    recording = json.loads((RECORDINGS / system / f"{case}.json").read_text())
    assert recording["source"]
    return recording["answers"]


def scylla(case: str) -> list[str]:
    rest = answers("scylla", case)
    return scylla_ready(
        (RECORDINGS / "scylla" / f"{case}.txt").read_text(),
        rest["GET /storage_service/native_transport"],
        rest["GET /storage_proxy/schema_versions"],
        SCYLLA_SELF,
        SCYLLA_MEMBERS,
    )


def scylla_drain(case: str) -> list[str]:
    return scylla_drained(answers("scylla", case)["GET /storage_service/operation_mode"])


def redpanda(case: str) -> list[str]:
    overview = answers("redpanda", case)["GET /v1/cluster/health_overview"]
    return redpanda_ready(overview, REDPANDA_MEMBERS)


def redpanda_maintenance(case: str) -> list[str]:
    return redpanda_maintenance_done(answers("redpanda", case)["GET /v1/brokers/2"])


def hazelcast(case: str) -> list[str]:
    return hazelcast_ready(answers("hazelcast", case)["GET /hazelcast/health"], HAZELCAST_MEMBERS)


def service_active(unit_state: str) -> list[str]:
    """The naive gate these probes replace: ready as soon as systemd says the unit runs."""
    return [] if unit_state == "active" else [f"unit is {unit_state}"]


# ScyllaDB


def test_nodetool_status_lines_are_parsed_with_their_datacenter() -> None:
    """Each node line yields its datacenter, status and state letters, address, host id and rack."""
    rows = parse_nodetool_status((RECORDINGS / "scylla" / "own_joining.txt").read_text())
    assert [(r.datacenter, r.code, r.address, r.rack) for r in rows] == [
        ("dc-lab", "UJ", "10.20.0.11", "rack-a"),
        ("dc-lab", "UN", "10.20.0.12", "rack-b"),
        ("dc-lab", "UN", "10.20.0.13", "rack-c"),
    ]
    assert rows[0].host_id == "3f6c1d2e-8a41-4b7e-9c15-0d2e7a9b4c61"
    assert rows[0].describe() == "UJ (up, joining)"


def test_nodetool_status_headers_and_blank_lines_are_not_nodes() -> None:
    """The datacenter header, legend, column header and blank lines yield no node."""
    text = (RECORDINGS / "scylla" / "healthy.txt").read_text()
    assert len(parse_nodetool_status(text)) == 3
    assert parse_nodetool_status("\n".join(text.splitlines()[:5])) == []


SCYLLA = {
    "healthy": [],
    "peer_down": ["member 10.20.0.13 is DN (down, normal) as this node sees it"],
    "own_joining": [
        "this node (10.20.0.11) is UJ (up, joining), not UN",
        "native transport (CQL) is not running on this node",
    ],
    "native_transport_off": ["native transport (CQL) is not running on this node"],
    "schema_disagreement": [
        f"schema disagreement, 2 versions: {V1} on 10.20.0.11, 10.20.0.12; {V2} on 10.20.0.13"
    ],
    "member_missing": ["2 of 3 members in nodetool status; missing: 10.20.0.13"],
    "alone": ["1 of 3 members in nodetool status; missing: 10.20.0.12, 10.20.0.13"],
}


@pytest.mark.parametrize("case", sorted(SCYLLA))
def test_scylla_readiness(case: str) -> None:
    """Each recorded ScyllaDB moment yields exactly its written-out problems."""
    assert scylla(case) == SCYLLA[case]


def test_scylla_unreachable_schema_check_is_named() -> None:
    """A live host that does not answer the schema check is named, apart from disagreement."""
    rest = answers("scylla", "healthy")
    versions = [
        {"key": V1, "value": ["10.20.0.11", "10.20.0.12"]},
        {"key": "UNREACHABLE", "value": ["10.20.0.13"]},
    ]
    text = (RECORDINGS / "scylla" / "healthy.txt").read_text()
    problems = scylla_ready(
        text, rest["GET /storage_service/native_transport"], versions, SCYLLA_SELF, SCYLLA_MEMBERS
    )
    assert problems == ["schema check unreachable on 10.20.0.13"]


def test_scylla_node_missing_from_its_own_status_and_unexpected_nodes() -> None:
    """A node absent from its own nodetool status, and nodes not expected, are named."""
    rest = answers("scylla", "member_missing")
    text = (RECORDINGS / "scylla" / "member_missing.txt").read_text()
    problems = scylla_ready(
        text,
        rest["GET /storage_service/native_transport"],
        rest["GET /storage_proxy/schema_versions"],
        "10.20.0.13",
        ["10.20.0.13"],
    )
    assert problems == [
        "this node (10.20.0.13) is not in nodetool status",
        "nodetool status lists 10.20.0.11, not an expected member",
        "nodetool status lists 10.20.0.12, not an expected member",
    ]


SCYLLA_DRAIN = {
    "drain_done": [],
    "drain_in_progress": ["operation mode is DRAINING, not DRAINED"],
    "drain_not_started": ["operation mode is NORMAL, not DRAINED"],
}


@pytest.mark.parametrize("case", sorted(SCYLLA_DRAIN))
def test_scylla_pre_stop_waits_for_drained(case: str) -> None:
    """The pre-stop wait ends only when the operation mode reads DRAINED."""
    assert scylla_drain(case) == SCYLLA_DRAIN[case]


@pytest.mark.parametrize("case", sorted(c for c in SCYLLA if SCYLLA[c]))
def test_scylla_running_but_not_in_cluster_is_refused(case: str) -> None:
    """A running scylla-server passes "service is active"; every unhealthy recording is refused."""
    assert service_active("active") == []
    assert scylla(case) != []


# Redpanda

REDPANDA = {
    "healthy": [],
    "broker_down": [
        "cluster reports unhealthy: nodes_down, under_replicated_partitions",
        "brokers down: 2",
        "3 under-replicated partitions, e.g. kafka/orders/0, kafka/orders/2, kafka/payments/1",
    ],
    "leaderless": [
        "cluster reports unhealthy: leaderless_partitions",
        "1 leaderless partition, e.g. kafka/orders/4",
    ],
    "under_replicated": [
        "cluster reports unhealthy: under_replicated_partitions",
        "2 under-replicated partitions, e.g. kafka/payments/0, kafka/payments/3",
    ],
    "no_controller": [
        "cluster reports unhealthy: no_elected_controller",
        "no controller elected (controller_id -1)",
    ],
    "broker_not_registered": ["2 of 3 brokers registered; missing: 2"],
}


@pytest.mark.parametrize("case", sorted(REDPANDA))
def test_redpanda_readiness(case: str) -> None:
    """Each recorded health overview yields exactly its written-out problems."""
    assert redpanda(case) == REDPANDA[case]


def test_redpanda_counts_beyond_the_truncated_list() -> None:
    """The partition count comes from *_count when the server truncated the list."""
    overview = dict(answers("redpanda", "leaderless")["GET /v1/cluster/health_overview"])
    overview["leaderless_count"] = 300
    assert redpanda_ready(overview, REDPANDA_MEMBERS)[1] == (
        "300 leaderless partitions, e.g. kafka/orders/4"
    )


def test_redpanda_unexpected_broker_is_named() -> None:
    """A registered broker the fleet does not expect is named."""
    overview = answers("redpanda", "healthy")["GET /v1/cluster/health_overview"]
    assert redpanda_ready(overview, [0, 1]) == ["broker 2 is registered but not an expected member"]


REDPANDA_MAINTENANCE = {
    "maintenance_finished": [],
    "maintenance_draining": [
        "leadership drain not finished: 9 of 14 eligible partitions moved, 3 transferring"
    ],
    "maintenance_failed_transfers": [
        "drain errors: 2 failed leadership transfers (see the broker log)"
    ],
    "maintenance_not_enabled": ["maintenance mode is not enabled on this broker"],
}


@pytest.mark.parametrize("case", sorted(REDPANDA_MAINTENANCE))
def test_redpanda_pre_stop_waits_for_drained_leadership(case: str) -> None:
    """The pre-stop wait ends only when maintenance is on, draining finished, nothing failed."""
    assert redpanda_maintenance(case) == REDPANDA_MAINTENANCE[case]


def test_redpanda_local_maintenance_answer_is_read_too() -> None:
    """The bare status of GET /v1/maintenance is judged like the broker's maintenance_status."""
    status = answers("redpanda", "maintenance_draining")["GET /v1/brokers/2"]["maintenance_status"]
    assert redpanda_maintenance_done(status) == REDPANDA_MAINTENANCE["maintenance_draining"]


def test_redpanda_broker_without_maintenance_status_is_refused() -> None:
    """A broker answer without maintenance status (older release) never counts as drained."""
    assert redpanda_maintenance_done({"node_id": 2, "is_alive": True}) == [
        "no maintenance status in the answer (maintenance mode unsupported?)"
    ]


@pytest.mark.parametrize("case", sorted(c for c in REDPANDA if REDPANDA[c]))
def test_redpanda_running_but_not_in_cluster_is_refused(case: str) -> None:
    """A running redpanda passes "service is active"; every unhealthy recording is refused."""
    assert service_active("active") == []
    assert redpanda(case) != []


# Hazelcast

HAZELCAST = {
    "healthy": [],
    "not_safe": ["cluster is not safe: partition backups not in sync or migrating"],
    "migrations_pending": [
        "cluster is not safe: partition backups not in sync or migrating",
        "37 partition migrations pending",
    ],
    "member_missing": ["cluster has 2 members, expected 3"],
    "alone": ["cluster has 1 member, expected 3"],
    "shutting_down": ["member node state is PASSIVE, not ACTIVE"],
    "cluster_frozen": ["cluster state is FROZEN, not ACTIVE"],
}


@pytest.mark.parametrize("case", sorted(HAZELCAST))
def test_hazelcast_readiness(case: str) -> None:
    """Each recorded health answer yields exactly its written-out problems."""
    assert hazelcast(case) == HAZELCAST[case]


def test_hazelcast_missing_fields_are_refused() -> None:
    """An answer without the health fields (endpoint group off, other endpoint) is refused."""
    assert hazelcast_ready({}, HAZELCAST_MEMBERS) == [
        "member node state is None, not ACTIVE",
        "cluster state is None, not ACTIVE",
        "cluster is not safe: partition backups not in sync or migrating",
        "migration queue size not reported",
        "cluster has None, expected 3",
    ]


@pytest.mark.parametrize("case", sorted(c for c in HAZELCAST if HAZELCAST[c]))
def test_hazelcast_running_but_not_in_cluster_is_refused(case: str) -> None:
    """A running hazelcast passes "service is active"; every unhealthy recording is refused."""
    assert service_active("active") == []
    assert hazelcast(case) != []


def test_every_recording_is_checked() -> None:
    """Every recording file belongs to a case above, so none goes unchecked."""
    on_disk = {f"{p.parent.name}/{p.stem}" for p in RECORDINGS.glob("*/*")}
    checked = {f"scylla/{case}" for case in [*SCYLLA, *SCYLLA_DRAIN]}
    checked |= {f"redpanda/{case}" for case in [*REDPANDA, *REDPANDA_MAINTENANCE]}
    checked |= {f"hazelcast/{case}" for case in HAZELCAST}
    assert on_disk == checked
