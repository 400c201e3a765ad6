"""fleet.yaml validation: every problem at once, each with file and path."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.errors import ConfigError
from imagefactory.fleet.config import load_fleet, read_access_keys
from tests.fleetkit import group, hypervisor, write_fleet

HOST = {"hv-a": hypervisor("test:///default", "/srv/fleet")}


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_fleet(path)
    return [f"{p.path}: {p.message}" for p in err.value.problems]


def test_meaning_problems_are_all_reported(tmp_path: Path) -> None:
    """Unknown role, wrong disk, missing disk, a name App-Core reads as another role, a
    two-node cluster and a gateway outside the subnet: six problems in one error."""
    path = write_fleet(
        tmp_path,
        HOST,
        {
            "pers-x": group("MYSQL_PRIMARY", "persistence", 3, "cluster", "a", ("DATA_DB", 10)),
            "pers-y": group("REDPANDA", "persistence", 3, "cluster", "b", ("DATA_DB", 10)),
            "pers-z": group("HAZELCAST", "persistence", 3, "cluster", "c"),
            "wrk-api": group("APP", "workers", 3, "independent", "d"),
            "pers-w": group("SCYLLA_CLUSTER", "persistence", 2, "cluster", "e", ("DATA_DS", 10)),
        },
        network={"subnet": "10.20.0.0/24", "gateway": "10.30.0.1"},
    )
    assert problems(path) == [
        ".network.gateway: 10.30.0.1 is outside 10.20.0.0/24",
        ".groups.pers-x.role: unknown App-Core role 'MYSQL_PRIMARY'",
        ".groups.pers-y.data_disk.serial: role REDPANDA uses DATA_MS, not DATA_DB",
        ".groups.pers-z.data_disk: role HAZELCAST needs a DATA_MG data disk (App-Core refuses "
        "to configure it without)",
        ".groups.wrk-api: node names like wrk-api-01 match App-Core's hostname pattern of "
        "API: the VM would see conflicting roles",
        ".groups.pers-w.cluster: cluster e has 2 node(s): a cluster keeps quorum after losing "
        "a host only with 3 or more",
    ]


def test_schema_problems_name_the_path(tmp_path: Path) -> None:
    """Unknown keys and bad enums are reported with their YAML path."""
    path = write_fleet(
        tmp_path, HOST, {"wrk-app": group("APP", "workers", 2, "cluster-ish", "w", vcpus=4)}
    )
    found = problems(path)
    assert (
        ".groups.wrk-app: Additional properties are not allowed ('vcpus' was unexpected)" in found
    )
    assert (
        ".groups.wrk-app.topology: 'cluster-ish' is not one of ['cluster', 'independent']" in found
    )


def test_counts_are_whole_numbers(tmp_path: Path) -> None:
    """`count: 5.0` (a traceback before) and `vcpu: "4"` are refused, each with its path."""
    path = write_fleet(
        tmp_path, HOST, {"wrk-app": group("APP", "workers", 5.0, "independent", "w", vcpu="4")}
    )
    assert problems(path) == [
        ".groups.wrk-app.count: 5.0 is not of type 'integer'",
        ".groups.wrk-app.vcpu: '4' is not of type 'integer'",
    ]


def test_empty_file_says_empty(tmp_path: Path) -> None:
    """An empty fleet file is reported as empty, not as a type error."""
    (tmp_path / "fleet.yaml").write_text("")
    assert problems(tmp_path / "fleet.yaml") == [".: the file is empty"]


def test_subnet_too_small_for_the_fleet(tmp_path: Path) -> None:
    """A /28 cannot address 20 nodes after the first 10 addresses."""
    path = write_fleet(
        tmp_path,
        HOST,
        {"wrk-app": group("APP", "workers", 20, "independent", "w")},
        network={"subnet": "10.20.0.0/28", "gateway": "10.20.0.1"},
    )
    assert problems(path) == [
        ".network.subnet: 10.20.0.0/28 offers 5 node addresses after "
        "first_host, the fleet has 20 nodes"
    ]


def test_private_key_is_refused(tmp_path: Path) -> None:
    """Naming the private half of the ops key is an error; it never reaches a VM."""
    path = write_fleet(
        tmp_path,
        HOST,
        {"wrk-app": group("APP", "workers", 1, "independent", "w")},
        access={"ssh_authorized_keys": ["ops_ed25519"]},
    )
    fleet = load_fleet(path)
    with pytest.raises(ConfigError) as err:
        read_access_keys(fleet)
    assert "is a private key" in str(err.value)


def test_the_repository_fleet_file_is_valid() -> None:
    """fleet.yaml in the repository loads (its key file lives on the hypervisors)."""
    fleet = load_fleet(Path(__file__).resolve().parents[3] / "fleet.yaml")
    assert (fleet.name, fleet.node_count, len(fleet.hypervisors)) == ("prod", 71, 6)
    assert fleet.groups["pers-mg"].data_disk is not None
    assert fleet.groups["pers-mg"].data_disk.assumption


def test_reserved_addresses_inside_the_range_count(tmp_path: Path) -> None:
    """Gateway and DNS inside the node range take addresses too: 71 nodes do not fit in the
    72 addresses of a /25 above .55 when two of them are reserved."""
    path = write_fleet(
        tmp_path,
        HOST,
        {"wrk-app": group("APP", "workers", 71, "independent", "w")},
        network={
            "subnet": "10.20.0.0/25",
            "gateway": "10.20.0.126",
            "dns": ["10.20.0.125"],
            "first_host": 55,
        },
    )
    assert problems(path) == [
        ".network.subnet: 10.20.0.0/25 offers 70 node addresses after "
        "first_host, the fleet has 71 nodes"
    ]


def test_every_fleet_section_is_declared_once_in_schema_and_dataclass() -> None:
    """The fleet schema and the model's dataclasses name the same settings and choices (as
    for factory.yaml): a setting added to one and not the other fails here."""
    from imagefactory.fleet import model as fleet_model
    from imagefactory.util.model import load_schema, schema_mismatches

    schema = load_schema("fleet")
    props = schema["properties"]
    hypervisor, grp = (props[s]["additionalProperties"] for s in ("hypervisors", "groups"))
    size = schema["$defs"]["size"]
    out = schema_mismatches(fleet_model.Network, props["network"])
    out += schema_mismatches(fleet_model.RolloutSettings, props["rollout"])
    out += schema_mismatches(fleet_model.Size, size)
    out += [
        m
        for m in schema_mismatches(fleet_model.Hypervisor, hypervisor)
        if not m.startswith("NetworkAttachment:")  # a one-key mapping: {kind: value}
    ]
    kinds = set(hypervisor["properties"]["network"]["properties"])
    assert kinds == {k.value for k in fleet_model.NetworkKind}
    # a group's size is written beside its other fields, each over `defaults:` (a Size)
    out += schema_mismatches(fleet_model.Group, {"properties": {**grp["properties"], "size": {}}})
    out += [
        f"Group: size field {k!r} is not in Size"
        for k in size["properties"]
        if k not in grp["properties"]
    ]
    out += schema_mismatches(fleet_model.Fleet, schema)
    # the round-robin fields sit beside the others in the file, in a RoundRobin in the model
    rr = {k: grp["properties"][k] for k in ("rotation", "timezone", "backup", "backup_keep")}
    out += schema_mismatches(fleet_model.RoundRobin, {"properties": rr})
    # named by their section's key or the file, or written in the file under another name
    derived = {
        "Hypervisor: field 'name'",
        "Group: field 'name'",
        "Fleet: field 'path'",
        "Fleet: field 'name'",  # the file's `fleet:`
        "Fleet: field 'access_key_files'",  # access.ssh_authorized_keys
        "Fleet: schema property 'fleet'",
        "Fleet: schema property 'access'",
        "Fleet: schema property 'defaults'",  # each group's Size
        "Fleet: schema property 'version'",  # the file format's, always 1
        "Group: schema property 'vcpu'",
        "Group: schema property 'memory_gib'",
        "Group: schema property 'os_disk_gb'",
        "Group: field 'round_robin'",
        *(f"Group: schema property '{k}'" for k in rr),
    }
    assert [m for m in out if not any(m.startswith(d) for d in derived)] == []


def test_rollout_limits_default_and_are_checked(tmp_path: Path) -> None:
    """max_unavailable (10) and each host's max_parallel (2) have defaults; 0 is refused."""
    groups = {"wrk-app": group("APP", "workers", 2, "independent", "w")}
    fleet = load_fleet(write_fleet(tmp_path / "ok", HOST, groups))
    assert (fleet.rollout.max_unavailable, fleet.hypervisors["hv-a"].max_parallel) == (10, 2)
    bad = {"hv-a": hypervisor("test:///default", "/srv/fleet", max_parallel=0)}
    path = write_fleet(tmp_path / "bad", bad, groups, rollout={"max_unavailable": 0})
    assert problems(path) == [
        ".hypervisors.hv-a.max_parallel: 0 is less than the minimum of 1",
        ".rollout.max_unavailable: 0 is less than the minimum of 1",
    ]
