"""The fleet's metrics: what fleet.status sees (imagefactory_fleet_<fleet>.prom, written by
`invoke fleet.metrics`) and how the last rollout of each cluster went
(imagefactory_rollout_<fleet>.prom, written by fleet.rollout)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from imagefactory.fleet.nodes import FleetPlan, Node
from imagefactory.fleet.rollout import RolloutReport
from imagefactory.fleet.status import VmStatus
from imagefactory.report.metrics import (
    Metric,
    Sample,
    gauge,
    merge,
    previous_value,
    read_state,
    write_atomically,
)

EXISTS = ("running", "shut off")  # a defined VM whose template version libvirt told us
ROLLOUT_SUCCESS = "imagefactory_rollout_last_success_timestamp_seconds"


def status_metrics(directory: Path, plan: FleetPlan, rows: Sequence[VmStatus], now: float) -> Path:
    """VMs per family and version, VMs off their channel's version, missing, unreachable and
    definition drift, from fleet.status's rows; the whole fleet each time."""
    fleet = plan.fleet.name
    ours = [(plan.nodes[r.node].group.family, r) for r in rows if r.node in plan.nodes]
    versions = Counter((f, r.version) for f, r in ours if r.state in EXISTS)
    families = sorted({g.family for g in plan.fleet.groups.values()})

    def count(f: str, keep: Callable[[VmStatus], bool]) -> int:
        return sum(1 for fam, r in ours if fam == f and keep(r))

    def per_family(
        name: str, help_text: str, keep: Callable[[VmStatus], bool], of: list[str]
    ) -> Metric:
        return gauge(
            name, help_text, (Sample.of(count(f, keep), fleet=fleet, family=f) for f in of)
        )

    # drift is known only where the channel was read (r.channel "?" otherwise)
    known = sorted({f for f, r in ours if r.channel != "?"})
    metrics = [
        gauge(
            "imagefactory_fleet_vms",
            "Defined VMs of the fleet by image family and the template version they run.",
            (Sample.of(n, fleet=fleet, family=f, version=v) for (f, v), n in versions.items()),
        ),
        per_family(
            "imagefactory_fleet_version_drift_vms",
            "Defined VMs not on the version their family's channel points at.",
            lambda r: r.state in EXISTS and r.version != r.channel,
            known,
        ),
        per_family(
            "imagefactory_fleet_definition_drift_vms",
            "Defined VMs whose libvirt definition differs from the plan (fleet.status's drift).",
            lambda r: r.state in EXISTS and bool(r.drift),
            families,
        ),
        per_family(
            "imagefactory_fleet_vms_missing",
            "VMs of the plan not defined on their hypervisor.",
            lambda r: r.state == "missing",
            families,
        ),
        per_family(
            "imagefactory_fleet_vms_unreachable",
            "VMs of the plan whose hypervisor could not be reached.",
            lambda r: r.state == "unreachable",
            families,
        ),
        per_family(
            "imagefactory_fleet_vms_revoked",
            "Defined VMs running a revoked template version (or one whose record does not verify).",
            lambda r: r.state in EXISTS and bool(r.revoked),
            families,
        ),
        gauge(
            "imagefactory_fleet_vms_not_in_plan",
            "Domains of this fleet on a hypervisor that the plan does not have.",
            [Sample.of(sum(1 for r in rows if r.state == "not in plan"), fleet=fleet)],
        ),
        gauge(
            "imagefactory_fleet_status_timestamp_seconds",
            "Unix time these fleet metrics were taken.",
            [Sample.of(now, fleet=fleet)],
        ),
    ]
    return write_atomically(directory, f"imagefactory_fleet_{fleet}", metrics)


def rollout_metrics(
    directory: Path, fleet: str, nodes: Sequence[Node], report: RolloutReport, now: float
) -> Path:
    """Per cluster this rollout covered: nodes considered, nodes on the target at the end, the
    result (1 finished, 0 stopped) and its time; other clusters' samples are kept."""
    stem = f"imagefactory_rollout_{fleet}"
    previous = read_state(directory, stem)
    members: dict[str, list[str]] = {}
    for node in nodes:
        members.setdefault(node.group.cluster, []).append(node.name)
    clusters = sorted(members)

    def done(cluster: str) -> int:
        said = [report.outcomes.get(n, "") for n in members[cluster]]
        return sum(1 for o in said if o.startswith(("now on ", "already on ")))

    def success(c: str) -> float:
        return (
            now
            if c not in report.stopped
            else previous_value(previous, ROLLOUT_SUCCESS, fleet=fleet, cluster=c)
        )

    new = [
        gauge(
            "imagefactory_rollout_nodes",
            "Nodes of the cluster the last rollout covered.",
            (Sample.of(len(members[c]), fleet=fleet, cluster=c) for c in clusters),
        ),
        gauge(
            "imagefactory_rollout_nodes_done",
            "Nodes of the cluster on the target version when the last rollout ended.",
            (Sample.of(done(c), fleet=fleet, cluster=c) for c in clusters),
        ),
        gauge(
            "imagefactory_rollout_last_result",
            "Result of the cluster's last rollout: 1 finished, 0 stopped.",
            (Sample.of(c not in report.stopped, fleet=fleet, cluster=c) for c in clusters),
        ),
        gauge(
            "imagefactory_rollout_last_timestamp_seconds",
            "Unix time the cluster's last rollout ended.",
            (Sample.of(now, fleet=fleet, cluster=c) for c in clusters),
        ),
        gauge(
            ROLLOUT_SUCCESS,
            "Unix time of the cluster's last rollout that finished; 0: never.",
            (Sample.of(success(c), fleet=fleet, cluster=c) for c in clusters),
        ),
    ]
    return write_atomically(directory, stem, merge(previous, new, "cluster", set(clusters)))
