"""Load fleet.yaml: JSON Schema first, then meaning (App-Core roles and disks, names, the
subnet, clusters, keys); every problem is collected and reported at once with file and path."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagefactory.config import read_yaml, schema_problems
from imagefactory.errors import ConfigError, Problem
from imagefactory.fleet.model import (
    Capacity,
    DataDisk,
    DomainType,
    Fleet,
    Group,
    Hypervisor,
    Network,
    NetworkAttachment,
    NetworkKind,
    Overcommit,
    RolloutSettings,
    Size,
    StorageMode,
    Topology,
)
from imagefactory.store.settings import store_settings_from_dict

CATALOGUE_DIR = Path(__file__).resolve().parents[2] / "appcore" / "catalogue"
PUBLIC_KEY = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+|sk-ssh-ed25519@openssh\.com)"
    r" [A-Za-z0-9+/=]+( [^\s]+)?$"
)


@dataclass(frozen=True)
class CatalogueRole:
    family: str
    disks: tuple[str, ...]
    hostname_pattern: str


def load_catalogue(directory: Path = CATALOGUE_DIR) -> dict[str, CatalogueRole]:
    """App-Core's role catalogue (roles.json plus the stand-in's SELFTEST role): family, data
    disks and hostname pattern per role, which fleet groups must agree with."""
    roles: dict[str, CatalogueRole] = {}
    for name in ("roles.json", "selftest-role.json"):
        doc = json.loads((directory / name).read_text())
        for role_id, info in doc["roles"].items():
            roles[role_id] = CatalogueRole(
                info["family"], tuple(info.get("disks", [])), info.get("hostname_pattern", "")
            )
    return roles


def load_fleet(path: Path) -> Fleet:
    """Read, validate and model a fleet file; raise ConfigError listing every problem."""
    path = path.resolve() if path.exists() else path
    doc = read_yaml(path)
    file = str(path)
    if doc is None:
        raise ConfigError([Problem(file, ".", "the file is empty", "see docs/fleet.md")])
    problems = schema_problems(file, doc, "fleet")
    if problems:
        raise ConfigError(problems)
    problems = []
    store = None
    if "store" in doc:
        store, store_problems = store_settings_from_dict(doc["store"], file, path.parent)
        problems += store_problems
    network, net_problems = _network(file, doc["network"])
    problems += net_problems
    defaults = Size(**doc.get("defaults", {}))
    fleet = Fleet(
        path=path,
        name=doc["fleet"],
        network=network,
        hypervisors={n: _hypervisor(n, h) for n, h in doc["hypervisors"].items()},
        groups={n: _group(n, g, defaults) for n, g in doc["groups"].items()},
        channel=doc.get("channel", "stable"),
        store=store,
        placement_file=path.parent / doc.get("placement_file", f"{path.stem}.placement.json"),
        access_key_files=tuple(
            _resolve(path, k) for k in doc.get("access", {}).get("ssh_authorized_keys", [])
        ),
        description=doc.get("description", ""),
        rollout=_rollout(path, doc.get("rollout", {})),
    )
    problems += semantic_problems(fleet, load_catalogue())
    if problems:
        raise ConfigError(problems)
    return fleet


def _network(file: str, doc: dict[str, Any]) -> tuple[Network, list[Problem]]:
    problems: list[Problem] = []
    try:
        subnet = ipaddress.IPv4Network(doc["subnet"])
    except ValueError as exc:
        problems.append(
            Problem(
                file,
                ".network.subnet",
                f"not an IPv4 subnet: {exc}",
                "e.g. 10.20.0.0/22 (host bits zero)",
            )
        )
        subnet = ipaddress.IPv4Network("0.0.0.0/32")
    addrs: list[ipaddress.IPv4Address] = []
    for where, raw in [
        (".network.gateway", doc["gateway"]),
        *((f".network.dns[{i}]", d) for i, d in enumerate(doc.get("dns", []))),
    ]:
        try:
            addr = ipaddress.IPv4Address(raw)
        except ValueError:
            problems.append(Problem(file, where, f"{raw!r} is not an IPv4 address"))
            addr = ipaddress.IPv4Address("0.0.0.0")
        addrs.append(addr)
    gateway = addrs[0]
    if not problems and gateway not in subnet:
        problems.append(Problem(file, ".network.gateway", f"{gateway} is outside {subnet}"))
    net = Network(subnet, gateway, tuple(addrs[1:]), doc.get("first_host", 10))
    return net, problems


def _resolve(path: Path, name: str) -> Path:
    p = Path(name).expanduser()
    return p if p.is_absolute() else path.parent / p


def read_access_keys(fleet: Fleet) -> tuple[str, ...]:
    """Public keys for the `ops` admin, passed to each VM as SMBIOS strings (never private).
    Read when VMs are rendered or applied, so that `fleet.plan` runs anywhere."""
    keys: list[str] = []
    problems: list[Problem] = []
    for i, key_path in enumerate(fleet.access_key_files):
        where = f".access.ssh_authorized_keys[{i}]"
        try:
            text = key_path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(fleet.path), where, f"cannot read {key_path}: {exc}"))
            continue
        if "PRIVATE KEY" in text:
            problems.append(
                Problem(
                    str(fleet.path),
                    where,
                    f"{key_path} is a private key",
                    "name the .pub file; private keys never leave the host",
                )
            )
            continue
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
        bad = [ln for ln in lines if not PUBLIC_KEY.match(ln)]
        if bad or not lines:
            problems.append(
                Problem(str(fleet.path), where, f"{key_path}: not one OpenSSH public key per line")
            )
            continue
        keys += lines
    if problems:
        raise ConfigError(problems)
    return tuple(keys)


def _rollout(path: Path, doc: dict[str, Any]) -> RolloutSettings:
    return RolloutSettings(
        ssh_identity=_resolve(path, doc["ssh_identity"]) if "ssh_identity" in doc else None,
        shutdown_timeout_s=doc.get("shutdown_timeout_s", 120),
        health_timeout_s=doc.get("health_timeout_s", 600),
        state_dir=_resolve(path, doc.get("state_dir", f"{path.stem}.rollout")),
    )


def _hypervisor(name: str, doc: dict[str, Any]) -> Hypervisor:
    ((kind, value),) = doc["network"].items()
    return Hypervisor(
        name=name,
        uri=doc["uri"],
        storage_dir=Path(doc["storage_dir"]),
        capacity=Capacity(**doc["capacity"]),
        network=NetworkAttachment(NetworkKind(kind), str(value)),
        overcommit=Overcommit(**doc.get("overcommit", {})),
        domain_type=DomainType(doc.get("domain_type", "auto")),
        storage=StorageMode(doc.get("storage", "auto")),
    )


def _group(name: str, doc: dict[str, Any], defaults: Size) -> Group:
    size = Size(
        **{f.name: doc.get(f.name, getattr(defaults, f.name)) for f in dataclasses.fields(Size)}
    )
    disk = doc.get("data_disk")
    return Group(
        name=name,
        role=doc["role"],
        family=doc["family"],
        count=doc["count"],
        topology=Topology(doc["topology"]),
        cluster=doc["cluster"],
        size=size,
        data_disk=DataDisk(disk["serial"], disk["size_gb"], disk.get("assumption", ""))
        if disk
        else None,
        description=doc.get("description", ""),
        rollout_batch=doc.get("rollout_batch", 1),
    )


def semantic_problems(fleet: Fleet, catalogue: dict[str, CatalogueRole]) -> list[Problem]:
    """Rules the schema cannot express: roles and disks as App-Core knows them, names that
    App-Core would read as another role, clusters that can keep a quorum, enough addresses."""
    file, out = str(fleet.path), []
    families = {r.family for r in catalogue.values()}
    for group in fleet.groups.values():
        where = f".groups.{group.name}"
        role = catalogue.get(group.role)
        if role is None:
            out.append(
                Problem(
                    file,
                    f"{where}.role",
                    f"unknown App-Core role '{group.role}'",
                    "one of: " + ", ".join(sorted(catalogue)),
                )
            )
            continue
        if group.family in families and group.family != role.family:
            out.append(
                Problem(
                    file,
                    f"{where}.family",
                    f"role {group.role} belongs to the {role.family} family, not {group.family}",
                )
            )
        wanted = role.disks[0] if role.disks else None
        have = group.data_disk.serial if group.data_disk else None
        if wanted and have is None:
            out.append(
                Problem(
                    file,
                    f"{where}.data_disk",
                    f"role {group.role} needs a "
                    f"{wanted} data disk (App-Core refuses to configure it without)",
                    f"data_disk: {{serial: {wanted}, size_gb: N}}",
                )
            )
        elif have and have != wanted:
            out.append(
                Problem(
                    file,
                    f"{where}.data_disk.serial",
                    f"role {group.role} uses {wanted or 'no data disk'}, not {have}",
                )
            )
        for node in group.node_names[:1]:
            others = sorted(
                r
                for r, c in catalogue.items()
                if c.hostname_pattern and re.match(c.hostname_pattern, node) and r != group.role
            )
            if others:
                out.append(
                    Problem(
                        file,
                        where,
                        f"node names like {node} match App-Core's "
                        f"hostname pattern of {', '.join(others)}: the VM would "
                        "see conflicting roles",
                        "rename the group",
                    )
                )
    for cluster, groups in fleet.clusters().items():
        kinds = {g.topology for g in groups}
        where = f".groups.{groups[0].name}.cluster"
        if len(kinds) > 1:
            out.append(
                Problem(
                    file,
                    where,
                    f"cluster {cluster} mixes topologies",
                    "groups sharing a cluster name share its topology",
                )
            )
        size = sum(g.count for g in groups)
        if kinds == {Topology.CLUSTER} and size < 3:
            out.append(
                Problem(
                    file,
                    where,
                    f"cluster {cluster} has {size} node(s): a cluster "
                    "keeps quorum after losing a host only with 3 or more",
                    "add nodes or use topology: independent",
                )
            )
    net = fleet.network
    first = int(net.subnet.network_address) + net.first_host
    last = int(net.subnet.broadcast_address) - 1
    reserved = {int(a) for a in (net.gateway, *net.dns) if first <= int(a) <= last}
    usable = max(0, last - first + 1 - len(reserved))
    if fleet.node_count > usable:
        out.append(
            Problem(
                file,
                ".network.subnet",
                f"{net.subnet} offers {usable} "
                f"node addresses after first_host, the fleet has "
                f"{fleet.node_count} nodes",
            )
        )
    for group in fleet.groups.values():
        if group.name.startswith("tpl-"):
            out.append(
                Problem(
                    file,
                    f".groups.{group.name}",
                    "group names may not start with 'tpl-' (the prefix of template volumes)",
                )
            )
    seen: dict[str, str] = {}
    for hv in fleet.hypervisors.values():
        if hv.uri in seen:
            out.append(
                Problem(
                    file, f".hypervisors.{hv.name}.uri", f"same URI as hypervisor {seen[hv.uri]}"
                )
            )
        seen[hv.uri] = hv.name
    return out
