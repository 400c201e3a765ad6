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

from imagefactory.errors import ConfigError, Problem
from imagefactory.fleet.model import (
    Fleet,
    Group,
    Hypervisor,
    Network,
    RoleCatalogue,
    RolloutSettings,
    Size,
    Topology,
)
from imagefactory.fleet.rr_config import RR_FIELDS, round_robin, round_robin_problems
from imagefactory.store.settings import StoreSettings, store_settings_from_dict
from imagefactory.util import model
from imagefactory.util.configfile import read_yaml, schema_problems

CATALOGUE_DIR = Path(__file__).resolve().parents[2] / "appcore" / "catalogue"
PUBLIC_KEY = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+|sk-ssh-ed25519@openssh\.com)"
    r" [A-Za-z0-9+/=]+( [^\s]+)?$"
)


# App-Core's rule for a hostname it is given (appcore/src/appcore/apply.py HOSTNAME; a unit
# test keeps the two equal): a name it refuses stops the VM's configuration at boot.
APPCORE_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
    r"(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
TEST_ROLES_FILE = "selftest-role.json"


@dataclass(frozen=True)
class CatalogueRole:
    family: str
    disks: tuple[str, ...]
    hostname_pattern: str
    galera: bool = False  # its members form a Galera cluster (the role has a galera block)
    test_only: bool = False  # from selftest-role.json: only the stand-in image carries it


def load_catalogue(directory: Path = CATALOGUE_DIR) -> dict[str, CatalogueRole]:
    """App-Core's role catalogue (roles.json plus the stand-in's test roles, marked
    test_only): family, data disks and hostname pattern per role, which fleet groups must
    agree with."""
    roles: dict[str, CatalogueRole] = {}
    for name in ("roles.json", TEST_ROLES_FILE):
        doc = json.loads((directory / name).read_text())
        for role_id, info in doc["roles"].items():
            roles[role_id] = CatalogueRole(
                info["family"],
                tuple(info.get("disks", [])),
                info.get("hostname_pattern", ""),
                "galera" in info,
                name == TEST_ROLES_FILE,
            )
    return roles


def galera_roles() -> frozenset[str]:
    """App-Core roles whose members form a Galera cluster (PXC writers and read-only members,
    the stand-in's STANDIN_GALERA)."""
    return frozenset(r for r, info in load_catalogue().items() if info.galera)


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
    store = None
    if "store" in doc:
        store, problems = store_settings_from_dict(doc["store"], file, path.parent)
    network, net_problems = _network(file, doc["network"])
    problems += net_problems
    fleet = _model(path, doc, network, store)
    problems += semantic_problems(fleet, load_catalogue())
    if problems:
        raise ConfigError(problems)
    return fleet


def _model(path: Path, doc: dict[str, Any], network: Network, store: StoreSettings | None) -> Fleet:
    """The dataclasses of a schema-valid fleet file; paths are relative to its directory.
    Only what the file names differently from the model, and the defaults named after the
    file, are written here; every other default is the dataclass's."""
    root = path.parent
    defaults = doc.get("defaults", {})
    # the rollout state and the placement record are named after the fleet file by default
    rollout = {"state_dir": f"{path.stem}.rollout", **doc.get("rollout", {})}
    return model.build(
        Fleet,
        {k: doc[k] for k in ("channel", "description", "catalogue") if k in doc},
        root=root,
        given={
            "path": path,
            "name": doc["fleet"],
            "network": network,
            "store": store,
            "hypervisors": {
                name: model.build(Hypervisor, hv, given={"name": name})
                for name, hv in doc["hypervisors"].items()
            },
            "groups": {n: _group(n, g, defaults, root) for n, g in doc["groups"].items()},
            "placement_file": root / doc.get("placement_file", f"{path.stem}.placement.json"),
            "access_key_files": tuple(
                _resolve(path, k) for k in doc.get("access", {}).get("ssh_authorized_keys", [])
            ),
            "rollout": model.build(RolloutSettings, rollout, root=root),
        },
    )


def _group(name: str, doc: dict[str, Any], defaults: dict[str, Any], root: Path) -> Group:
    """A group; its size is the file's `defaults:` overridden by the group's own fields."""
    size_fields = {f.name for f in dataclasses.fields(Size)}
    size = model.build(Size, {**defaults, **{k: v for k, v in doc.items() if k in size_fields}})
    fields = {k: v for k, v in doc.items() if k not in size_fields and k not in RR_FIELDS}
    rr = round_robin(doc, root)
    return model.build(Group, fields, given={"name": name, "size": size, "round_robin": rr})


def _network(file: str, doc: dict[str, Any]) -> tuple[Network, list[Problem]]:
    """The network section, its addresses checked first (a problem is reported and a
    placeholder stands in, so that the other rules are still judged)."""
    problems: list[Problem] = []
    checked = dict(doc)
    try:
        ipaddress.IPv4Network(doc["subnet"])
    except ValueError as exc:
        problems.append(
            Problem(
                file,
                ".network.subnet",
                f"not an IPv4 subnet: {exc}",
                "e.g. 10.20.0.0/22 (host bits zero)",
            )
        )
        checked["subnet"] = "0.0.0.0/32"
    addrs: list[str] = []
    for where, raw in [
        (".network.gateway", doc["gateway"]),
        *((f".network.dns[{i}]", d) for i, d in enumerate(doc.get("dns", []))),
    ]:
        try:
            addrs.append(str(ipaddress.IPv4Address(raw)))
        except ValueError:
            problems.append(Problem(file, where, f"{raw!r} is not an IPv4 address"))
            addrs.append("0.0.0.0")
    checked["gateway"], checked["dns"] = addrs[0], addrs[1:]
    net = model.build(Network, checked)
    if not problems and net.gateway not in net.subnet:
        problems.append(Problem(file, ".network.gateway", f"{net.gateway} is outside {net.subnet}"))
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


def semantic_problems(fleet: Fleet, catalogue: dict[str, CatalogueRole]) -> list[Problem]:
    """Rules the schema cannot express, one function per section: roles and disks as App-Core
    knows them, names that App-Core would read as another role, clusters that can keep a
    quorum, enough addresses, group names, hypervisor URIs."""
    out = [p for g in fleet.groups.values() for p in _group_problems(fleet, g, catalogue)]
    out += _cluster_problems(fleet)
    out += _network_problems(fleet)
    out += _name_problems(fleet)
    out += _hypervisor_problems(fleet)
    out += round_robin_problems(fleet)
    return out


def _group_problems(
    fleet: Fleet, group: Group, catalogue: dict[str, CatalogueRole]
) -> list[Problem]:
    """The group's role, family, data disk and node names as App-Core's catalogue has them."""
    file, out = str(fleet.path), []
    families = {r.family for r in catalogue.values()}
    where = f".groups.{group.name}"
    role = catalogue.get(group.role)
    if role is None:
        return [
            Problem(
                file,
                f"{where}.role",
                f"unknown App-Core role '{group.role}'",
                "one of: "
                + ", ".join(
                    sorted(
                        r
                        for r, c in catalogue.items()
                        if not c.test_only or fleet.catalogue is RoleCatalogue.TEST
                    )
                ),
            )
        ]
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
    if role.test_only and fleet.catalogue is not RoleCatalogue.TEST:
        out.append(
            Problem(
                file,
                f"{where}.role",
                f"{group.role} is a test-only role ({TEST_ROLES_FILE}, carried by the stand-in "
                "image only): a production fleet file may not use it",
                "a test fleet says so with `catalogue: test`",
            )
        )
    return out + _hostname_problems(file, group, catalogue)


def _hostname_problems(
    file: str, group: Group, catalogue: dict[str, CatalogueRole]
) -> list[Problem]:
    """Node names App-Core would refuse at boot: not a hostname it accepts, or matching the
    hostname pattern of another role (its hostname channel would then contradict SMBIOS)."""
    where = f".groups.{group.name}"
    patterns = [
        (r, re.compile(c.hostname_pattern)) for r, c in catalogue.items() if c.hostname_pattern
    ]
    for node in group.node_names:
        if not APPCORE_HOSTNAME.match(node):
            return [
                Problem(
                    file,
                    where,
                    f"node names like {node} are not hostnames App-Core accepts "
                    "(lower-case DNS name): the VM would refuse its configuration at boot",
                    "rename the group",
                )
            ]
        others = sorted(r for r, rx in patterns if rx.match(node) and r != group.role)
        if others:
            return [
                Problem(
                    file,
                    where,
                    f"node names like {node} match App-Core's "
                    f"hostname pattern of {', '.join(others)}: the VM would "
                    "see conflicting roles",
                    "rename the group",
                )
            ]
    return []


def _cluster_problems(fleet: Fleet) -> list[Problem]:
    """Groups sharing a cluster share its topology; a cluster keeps a quorum."""
    file, out = str(fleet.path), []
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
    return out


def _network_problems(fleet: Fleet) -> list[Problem]:
    """The subnet has an address for every node."""
    file, out = str(fleet.path), []
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
    return out


def _name_problems(fleet: Fleet) -> list[Problem]:
    """Group names that would clash with the names of template volumes."""
    file, out = str(fleet.path), []
    for group in fleet.groups.values():
        if group.name.startswith("tpl-"):
            out.append(
                Problem(
                    file,
                    f".groups.{group.name}",
                    "group names may not start with 'tpl-' (the prefix of template volumes)",
                )
            )
    return out


def _hypervisor_problems(fleet: Fleet) -> list[Problem]:
    """Each hypervisor is reached by its own URI."""
    file, out = str(fleet.path), []
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
