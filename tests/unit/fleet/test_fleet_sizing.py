"""Totals of the production fleet, computed from fleet.yaml (the design document's table with
its copy errors corrected: docs/fleet.md)."""

from __future__ import annotations

from pathlib import Path

from imagefactory.fleet.config import load_fleet
from imagefactory.fleet.sizing import data_by_serial, fleet_totals, group_totals
from tests.fleetkit import production_with


def test_production_totals(tmp_path: Path) -> None:
    """71 nodes, 284 vCPU, 568 GiB, 4,544 GB of OS disk, 49,250 GB of data."""
    fleet = load_fleet(production_with(tmp_path, 6))
    assert fleet_totals(fleet) == {
        "nodes": 71,
        "vcpu": 284,
        "memory_gib": 568,
        "os_disk_gb": 4544,
        "data_disk_gb": 49250,
    }


def test_production_data_per_kind(tmp_path: Path) -> None:
    """MySQL 18,000 GB, ScyllaDB 30,000, Redpanda 1,000 (49,000) plus Hazelcast's 250."""
    fleet = load_fleet(production_with(tmp_path, 6))
    assert data_by_serial(fleet) == {
        "DATA_DB": 18000,
        "DATA_DS": 30000,
        "DATA_MG": 250,
        "DATA_MS": 1000,
    }


def test_group_totals_are_count_times_node(tmp_path: Path) -> None:
    """A row total is count x per-node size (the document copied 20/40/320/0 everywhere)."""
    fleet = load_fleet(production_with(tmp_path, 6))
    assert group_totals(fleet.groups["pers-ds-rr7d"]) == {
        "nodes": 7,
        "vcpu": 28,
        "memory_gib": 56,
        "os_disk_gb": 448,
        "data_disk_gb": 14000,
    }
    assert group_totals(fleet.groups["wrk-pg"]) == {
        "nodes": 3,
        "vcpu": 12,
        "memory_gib": 24,
        "os_disk_gb": 192,
        "data_disk_gb": 0,
    }


def test_every_document_group_is_in_the_fleet(tmp_path: Path) -> None:
    """The 17 node types of the design document, with its counts."""
    fleet = load_fleet(production_with(tmp_path, 6))
    assert {g.role: g.count for g in fleet.groups.values()} == {
        "MYSQL_MASTER": 5,
        "MYSQL_READONLY": 3,
        "MYSQL_RR_7D": 7,
        "MYSQL_RR_3M": 3,
        "SCYLLA_CLUSTER": 5,
        "SCYLLA_RR_7D": 7,
        "SCYLLA_RR_3M": 3,
        "REDPANDA": 5,
        "HAZELCAST": 5,
        "APP": 5,
        "API": 5,
        "NOTIFY_SMS": 3,
        "NOTIFY_EMAIL": 3,
        "NOTIFY_WHATSAPP": 3,
        "REPORT": 3,
        "PG": 3,
        "INVOICE": 3,
    }
