"""Totals computed from the fleet file (count x per-node size), never copied: per group, per
hypervisor, per cluster and for the fleet; as text for people and as a dict for --json."""

from __future__ import annotations

from typing import Any

from imagefactory.fleet.model import Fleet, Group
from imagefactory.fleet.nodes import FleetPlan


def group_totals(group: Group) -> dict[str, int]:
    data = group.data_disk.size_gb if group.data_disk else 0
    return {
        "nodes": group.count,
        "vcpu": group.count * group.size.vcpu,
        "memory_gib": group.count * group.size.memory_gib,
        "os_disk_gb": group.count * group.size.os_disk_gb,
        "data_disk_gb": group.count * data,
    }


def fleet_totals(fleet: Fleet) -> dict[str, int]:
    out = {"nodes": 0, "vcpu": 0, "memory_gib": 0, "os_disk_gb": 0, "data_disk_gb": 0}
    for group in fleet.groups.values():
        for key, value in group_totals(group).items():
            out[key] += value
    return out


def data_by_serial(fleet: Fleet) -> dict[str, int]:
    """Data disk GB per disk kind (DATA_DB = MySQL, DATA_DS = ScyllaDB, ...)."""
    out: dict[str, int] = {}
    for group in fleet.groups.values():
        if group.data_disk:
            out[group.data_disk.serial] = (
                out.get(group.data_disk.serial, 0) + group.count * group.data_disk.size_gb
            )
    return dict(sorted(out.items()))


def plan_document(plan: FleetPlan) -> dict[str, Any]:
    """Everything `fleet.plan --json` prints: totals, groups, hypervisors, nodes."""
    fleet = plan.fleet
    hosts = {}
    for name, hv in sorted(fleet.hypervisors.items()):
        use = plan.placement.use[name]
        hosts[name] = {
            "uri": hv.uri,
            "usable": {
                "vcpu": hv.usable.vcpu,
                "memory_gib": hv.usable.memory_gib,
                "storage_gb": hv.usable.storage_gb,
            },
            "used": {"vcpu": use.vcpu, "memory_gib": use.memory_gib, "storage_gb": use.storage_gb},
            "nodes": plan.placement.nodes_on(name),
        }
    return {
        "fleet": fleet.name,
        "totals": fleet_totals(fleet),
        "data_disk_gb_by_serial": data_by_serial(fleet),
        "groups": {
            g.name: {
                "role": g.role,
                "family": g.family,
                "cluster": g.cluster,
                "topology": g.topology.value,
                "per_node": {
                    "vcpu": g.size.vcpu,
                    "memory_gib": g.size.memory_gib,
                    "os_disk_gb": g.size.os_disk_gb,
                    "data_disk_gb": g.data_disk.size_gb if g.data_disk else 0,
                },
                "totals": group_totals(g),
            }
            for g in fleet.groups.values()
        },
        "hypervisors": hosts,
        "nodes": {
            n.name: {
                "group": n.group.name,
                "host": n.host,
                "ip": str(n.ip),
                "mac": n.mac,
                "uuid": n.uuid,
                "peers": [str(p) for p in n.peers],
            }
            for n in sorted(plan.nodes.values(), key=lambda n: n.name)
        },
        "moved": list(plan.placement.moved),
    }


def _row(cells: list[str], widths: list[int], left: set[int]) -> str:
    return "  ".join(
        c.ljust(w) if i in left else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    ).rstrip()


def _table(head: list[str], rows: list[list[str]], left: set[int] | None = None) -> list[str]:
    """Numbers right-aligned, the columns in `left` (default: the first) left-aligned."""
    left = left if left is not None else {0}
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return [_row(head, widths, left), *(_row(r, widths, left) for r in rows)]


def render_plan(plan: FleetPlan) -> str:
    """The plan as tables: groups (per node and totals), hypervisors (used / usable)."""
    fleet = plan.fleet
    head = [
        "group",
        "role",
        "n",
        "vCPU",
        "GiB",
        "OS GB",
        "data GB",
        "Σ vCPU",
        "Σ GiB",
        "Σ OS GB",
        "Σ data GB",
    ]
    rows = []
    for g in fleet.groups.values():
        t = group_totals(g)
        rows.append(
            [
                g.name,
                g.role,
                str(g.count),
                str(g.size.vcpu),
                str(g.size.memory_gib),
                str(g.size.os_disk_gb),
                str(g.data_disk.size_gb if g.data_disk else 0),
                f"{t['vcpu']:,}",
                f"{t['memory_gib']:,}",
                f"{t['os_disk_gb']:,}",
                f"{t['data_disk_gb']:,}",
            ]
        )
    t = fleet_totals(fleet)
    rows.append(
        [
            "TOTAL",
            "",
            str(t["nodes"]),
            "",
            "",
            "",
            "",
            f"{t['vcpu']:,}",
            f"{t['memory_gib']:,}",
            f"{t['os_disk_gb']:,}",
            f"{t['data_disk_gb']:,}",
        ]
    )
    lines = [
        f"fleet {fleet.name}: {t['nodes']} nodes on {len(fleet.hypervisors)} hypervisors",
        "",
        *_table(head, rows),
        "",
    ]
    by_serial = ", ".join(f"{s} {gb:,} GB" for s, gb in data_by_serial(fleet).items())
    lines += [f"data disks: {by_serial}", ""]
    hrows = []
    for name, hv in sorted(fleet.hypervisors.items()):
        use, cap = plan.placement.use[name], hv.usable
        groups: dict[str, int] = {}
        for node in plan.on_host(name):
            groups[node.group.name] = groups.get(node.group.name, 0) + 1
        hrows.append(
            [
                name,
                str(len(use.nodes)),
                f"{use.vcpu}/{cap.vcpu}",
                f"{use.memory_gib}/{cap.memory_gib}",
                f"{use.storage_gb:,}/{cap.storage_gb:,}",
                " ".join(f"{g}:{c}" for g, c in sorted(groups.items())),
            ]
        )
    lines += _table(["hypervisor", "VMs", "vCPU", "GiB", "GB", "groups"], hrows, {0, 5})
    if plan.placement.moved:
        lines += ["", "moved from their previous host: " + ", ".join(plan.placement.moved)]
    return "\n".join(lines)
