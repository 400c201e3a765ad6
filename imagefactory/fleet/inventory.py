"""`invoke fleet.inventory`: the fleet as an Ansible dynamic inventory (the JSON an inventory
script prints for `--list`), from the fleet file and its placement record only: no libvirt.

Groups: role_<role>, cluster_<cluster>, group_<group>, family_<family>, hypervisor_<name>,
each a child of by_role, by_cluster, by_group, by_family or by_hypervisor, which are children
of fleet_<fleet>. Host variables: ansible_host (and ansible_port on a user-network host), role,
family, cluster, group, hypervisor, fleet. The template version a VM runs is known only to
libvirt (fleet.status), so it is not here.
"""

from __future__ import annotations

import re
from typing import Any

from imagefactory.fleet.apply import select
from imagefactory.fleet.health import ssh_address
from imagefactory.fleet.nodes import FleetPlan, Node

KINDS = (  # (parent group, child group prefix = the host variable it groups by)
    ("by_role", "role"),
    ("by_cluster", "cluster"),
    ("by_group", "group"),
    ("by_family", "family"),
    ("by_hypervisor", "hypervisor"),
)


def group_name(prefix: str, value: str) -> str:
    """An Ansible-safe group name: letters, digits and underscores only."""
    return f"{prefix}_" + re.sub(r"[^A-Za-z0-9_]", "_", value).lower()


def _values(node: Node) -> dict[str, str]:
    g = node.group
    return {
        "role": g.role,
        "cluster": g.cluster,
        "group": g.name,
        "family": g.family,
        "hypervisor": node.host,
    }


def inventory(plan: FleetPlan) -> dict[str, Any]:
    fleet = plan.fleet
    hostvars: dict[str, dict[str, Any]] = {}
    groups: dict[str, dict[str, Any]] = {}
    for node in sorted(select(plan, None, None), key=lambda n: n.name):
        values = _values(node)
        host, port = ssh_address(fleet, node)
        hostvars[node.name] = {
            "ansible_host": host,
            **({"ansible_port": port} if port != 22 else {}),
            **values,
            "fleet": fleet.name,
        }
        for parent, prefix in KINDS:
            child = group_name(prefix, values[prefix])
            groups.setdefault(child, {"hosts": [], "children": []})["hosts"].append(node.name)
            kids = groups.setdefault(parent, {"hosts": [], "children": []})["children"]
            if child not in kids:
                kids.append(child)
    top = group_name("fleet", fleet.name)
    groups[top] = {"hosts": [], "children": [parent for parent, _ in KINDS]}
    for doc in groups.values():
        doc["children"].sort()
    return {
        "_meta": {"hostvars": hostvars},
        "all": {"children": [top]},
        **dict(sorted(groups.items())),
    }
