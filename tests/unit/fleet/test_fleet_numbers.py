"""Every integer field of fleet.yaml refuses a float, a string and a bool, with one message
naming the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from imagefactory.errors import ConfigError
from imagefactory.fleet.config import load_fleet
from imagefactory.util.model import load_schema
from tests.fleetkit import group, hypervisor, write_fleet

# Every integer field of the schema, "*" standing for a hypervisor's or a group's name.
INTEGER_FIELDS = [
    "defaults.memory_gib",
    "defaults.os_disk_gb",
    "defaults.vcpu",
    "groups.*.backup_keep",
    "groups.*.count",
    "groups.*.data_disk.size_gb",
    "groups.*.memory_gib",
    "groups.*.os_disk_gb",
    "groups.*.rollout_batch",
    "groups.*.vcpu",
    "hypervisors.*.capacity.memory_gib",
    "hypervisors.*.capacity.storage_gb",
    "hypervisors.*.capacity.vcpu",
    "hypervisors.*.max_parallel",
    "hypervisors.*.network.user_ssh_port_base",
    "network.first_host",
    "rollout.health_timeout_s",
    "rollout.max_unavailable",
    "rollout.shutdown_timeout_s",
    "version",
]


def concrete(field: str) -> str:
    """The field's path in the test document: its one group and one hypervisor named."""
    return field.replace("groups.*", "groups.pers-ms").replace("hypervisors.*", "hypervisors.hv-a")


def integer_fields(schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of the fields whose schema type is integer ($refs to $defs followed)."""
    defs = load_schema("fleet")["$defs"]
    if "$ref" in schema and schema["$ref"].startswith("#/$defs/"):
        schema = defs[schema["$ref"].removeprefix("#/$defs/")]
    out = [prefix] if schema.get("type") == "integer" else []
    for key, sub in schema.get("properties", {}).items():
        out += integer_fields(sub, f"{prefix}.{key}" if prefix else key)
    if isinstance(schema.get("additionalProperties"), dict):
        out += integer_fields(schema["additionalProperties"], f"{prefix}.*")
    return out


def test_the_list_covers_every_integer_field_of_the_schema() -> None:
    """The fields tested below are all the integer fields the schema declares."""
    assert sorted(integer_fields(load_schema("fleet"))) == INTEGER_FIELDS


def fleet_with(tmp_path: Path, field: str, value: Any) -> Path:
    """A valid fleet file (every optional integer field present) with `field` set to value."""
    path = write_fleet(
        tmp_path,
        {"hv-a": hypervisor("test:///default", "/srv/fleet")},
        {
            "pers-ms": group(
                "REDPANDA", "persistence", 3, "cluster", "ms", ("DATA_MS", 10), rollout_batch=1
            )
        },
        defaults={"vcpu": 2, "memory_gib": 2, "os_disk_gb": 8},
        rollout={"shutdown_timeout_s": 60, "health_timeout_s": 60},
    )
    doc = yaml.safe_load(path.read_text())
    doc["network"]["first_host"] = 10
    parts = concrete(field).split(".")
    if field == "hypervisors.*.network.user_ssh_port_base":
        doc["hypervisors"]["hv-a"]["network"] = {}
    node = doc
    for key in parts[:-1]:
        node = node.setdefault(key, {})
    node[parts[-1]] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_the_base_document_is_valid(tmp_path: Path) -> None:
    """The document the cases start from loads (so each case's one problem is its own)."""
    assert load_fleet(fleet_with(tmp_path, "version", 1)).node_count == 3


@pytest.mark.parametrize("value", [5.0, "5", True], ids=["float", "string", "bool"])
@pytest.mark.parametrize("field", INTEGER_FIELDS)
def test_an_integer_field_refuses_a_non_integer(tmp_path: Path, field: str, value: Any) -> None:
    """One problem, naming the file and the field, saying it is not an integer."""
    path = fleet_with(tmp_path, field, value)
    with pytest.raises(ConfigError) as err:
        load_fleet(path)
    assert [(p.file, p.path, p.message) for p in err.value.problems] == [
        (str(path), "." + concrete(field), f"{value!r} is not of type 'integer'")
    ]
