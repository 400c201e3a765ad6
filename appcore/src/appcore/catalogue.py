"""The role catalogue: JSON data shipped in the image, validated in full before anything is done.

Roles are data, not code branches: adding a role means adding a JSON entry and a template.
"""

import glob
import json
import os
import re
import string
from typing import Any, Dict, List, NamedTuple, Optional

from appcore.errors import CatalogueError
from appcore.galera import FLAVOURS as GALERA_FLAVOURS
from appcore.roleready import KINDS as READINESS_KINDS
from appcore.roundrobin import KINDS as RR_KINDS
from appcore.roundrobin import TOOLS as RR_TOOLS

ROLE_ID = re.compile(r"^[A-Z][A-Z0-9_]{1,31}$")
# A virtio-blk serial is cut at 20 bytes; the serial doubles as the XFS label (max 12 chars).
SERIAL = re.compile(r"^[A-Z][A-Z0-9_]{0,11}$")
MOUNT_POINT = re.compile(r"^/data/[a-z0-9]{1,16}$")
SERVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,80}\.service$")
PARAM = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SELINUX_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,62}_t$")
FSTYPES = ("xfs", "ext4")
REQUIRED_OPTIONS = ("nodev", "nosuid")
ALLOWED_OPTIONS = ("nodev", "nosuid", "noexec", "noatime", "relatime", "defaults")
BUILTIN_VARS = ("role", "role_lower", "family", "hostname", "config_dir", "data_dir", "version")
# Placeholders computed from a comma-separated `peers` parameter, for formats that need a list.
PEER_VARS = ("peers_yaml", "peers_seed_servers")


def peer_values(peers: str) -> Dict[str, str]:
    """`peers` (a,b,c) as a YAML flow list and as Redpanda seed_servers entries."""
    items = [p for p in peers.split(",") if p]
    return {
        "peers_yaml": "[" + ", ".join(f'"{p}"' for p in items) + "]",
        "peers_seed_servers": "["
        + ", ".join(f'{{host: {{address: "{p}", port: 33145}}}}' for p in items)
        + "]",
    }


class Disk(NamedTuple):
    serial: str
    mount: str
    label: str
    fstypes: List[str]
    options: str
    selinux: List[Dict[str, str]]


class Role(NamedTuple):
    id: str
    family: str
    description: str
    services: List[str]
    disks: List[str]
    config_dir: str
    templates: Dict[str, str]
    params: Dict[str, Optional[str]]
    hostname_pattern: str
    hostname_example: str
    origin: str
    # A Galera member ({"flavour", "datadir", "defaults_file"}): its database is started by
    # the fleet (bootstrap or join), never by App-Core at boot.
    galera: Optional[Dict[str, str]] = None
    # A member whose readiness its cluster answers (appcore.roleready.KINDS), not systemd.
    readiness: Optional[str] = None
    # A round-robin member ({"kind", "defaults_file"}): read-only unless the fleet's rotation
    # made it active (appcore.roundrobin).
    round_robin: Optional[Dict[str, str]] = None


class Catalogue:
    """Validated roles, disks and families, plus where the templates live."""

    def __init__(
        self,
        families: Dict[str, str],
        disks: Dict[str, Disk],
        roles: Dict[str, Role],
        template_dirs: List[str],
    ) -> None:
        self.families = families
        self.disks = disks
        self.roles = roles
        self.template_dirs = template_dirs

    def find_role(self, value: str) -> Optional[Role]:
        """Role IDs are matched case-insensitively, so `appcore:role=scylla_cluster` also works."""
        return self.roles.get(value.strip().upper())

    def template_text(self, name: str) -> str:
        for directory in self.template_dirs:
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate):
                with open(candidate, encoding="utf-8") as fh:
                    return fh.read()
        raise CatalogueError(
            "templates", ["template {} not found in {}".format(name, ", ".join(self.template_dirs))]
        )

    def roles_for_hostname(self, hostname: str) -> List[Role]:
        return [r for r in self.roles.values() if re.match(r.hostname_pattern, hostname)]


def load_catalogue(
    path: str, extra_dir: Optional[str] = None, extra_template_dir: Optional[str] = None
) -> Catalogue:
    """Load and validate the shipped catalogue plus optional extra role files (e.g. a test role).

    Every problem in every file is reported at once; nothing is used unless all of it is valid.
    """
    problems: List[str] = []
    doc = _read(path, problems)
    template_dirs = [os.path.join(os.path.dirname(path), "templates")]
    if extra_template_dir:
        template_dirs.append(extra_template_dir)
    families = _families(doc, path, problems)
    disks = _disks(doc, path, problems)
    roles = _roles(doc.get("roles"), path, families, disks, problems)
    for extra in sorted(glob.glob(os.path.join(extra_dir, "*.json"))) if extra_dir else []:
        extra_doc = _read(extra, problems)
        unknown = sorted(set(extra_doc) - {"roles"})
        if unknown:
            problems.append(f"{extra}: only 'roles' may be added here, not {unknown}")
        for role_id, role in _roles(
            extra_doc.get("roles"), extra, families, disks, problems
        ).items():
            if role_id in roles:
                problems.append(
                    f"{extra}: roles.{role_id}: already defined in {roles[role_id].origin}"
                )
            roles[role_id] = role
    catalogue = Catalogue(families, disks, roles, template_dirs)
    if not problems:
        _check_templates(catalogue, problems)
        _check_hostnames(catalogue, problems)
    if problems:
        raise CatalogueError(path, problems)
    return catalogue


def _read(path: str, problems: List[str]) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        problems.append(f"{path}: cannot read: {exc}")
        return {}
    if not isinstance(doc, dict):
        problems.append(f"{path}: top level must be a JSON object")
        return {}
    return doc


def _families(doc: Dict[str, Any], where: str, problems: List[str]) -> Dict[str, str]:
    raw = doc.get("families")
    if not isinstance(raw, dict) or not raw:
        problems.append(f"{where}: families: must be a non-empty object")
        return {}
    out = {}
    for name, info in raw.items():
        if not PARAM.match(name) or not isinstance(info, dict):
            problems.append(f"{where}: families.{name}: bad name or not an object")
            continue
        out[name] = str(info.get("description", ""))
    return out


def _disks(doc: Dict[str, Any], where: str, problems: List[str]) -> Dict[str, Disk]:
    raw = doc.get("disks")
    if not isinstance(raw, dict):
        problems.append(f"{where}: disks: must be an object")
        return {}
    out: Dict[str, Disk] = {}
    mounts: Dict[str, str] = {}
    for serial, info in raw.items():
        at = f"{where}: disks.{serial}"
        if not SERIAL.match(serial):
            problems.append(
                at + f": serial must match {SERIAL.pattern} (<= 12 chars: it is also the "
                "XFS label; virtio serials are cut at 20 bytes)"
            )
        if not isinstance(info, dict):
            problems.append(at + ": must be an object")
            continue
        _unknown_keys(info, ("mount", "label", "fstypes", "options", "selinux"), at, problems)
        mount = info.get("mount", "")
        if not isinstance(mount, str) or not MOUNT_POINT.match(mount):
            problems.append(at + ".mount: must match " + MOUNT_POINT.pattern)
        elif mount in mounts:
            problems.append(at + f".mount: {mount} is also used by {mounts[mount]}")
        else:
            mounts[mount] = serial
        label = info.get("label", serial)
        if label != serial:
            problems.append(at + f".label: must equal the serial ({serial})")
        fstypes = info.get("fstypes")
        if not isinstance(fstypes, list) or not fstypes or any(t not in FSTYPES for t in fstypes):
            problems.append(at + f".fstypes: must be a non-empty list from {FSTYPES}")
            fstypes = []
        options = info.get("options", "")
        opts = options.split(",") if isinstance(options, str) else []
        for needed in REQUIRED_OPTIONS:
            if needed not in opts:
                problems.append(at + ".options: must include " + needed)
        for opt in opts:
            if opt not in ALLOWED_OPTIONS:
                problems.append(at + f".options: {opt} is not one of {ALLOWED_OPTIONS}")
        selinux = info.get("selinux", [])
        if not isinstance(selinux, list):
            problems.append(at + ".selinux: must be a list")
            selinux = []
        for i, rule in enumerate(selinux):
            ok = (
                isinstance(rule, dict)
                and set(rule) == {"spec", "type"}
                and isinstance(rule["spec"], str)
                and rule["spec"].startswith(str(mount))
                and isinstance(rule["type"], str)
                and SELINUX_TYPE.match(rule["type"])
            )
            if not ok:
                problems.append(
                    at + f".selinux[{i}]: needs spec (under the mount point) and a "
                    "type like mysqld_db_t"
                )
        out[serial] = Disk(
            serial, str(mount), str(label), list(fstypes), str(options), list(selinux)
        )
    return out


def _roles(
    raw: Any, where: str, families: Dict[str, str], disks: Dict[str, Disk], problems: List[str]
) -> Dict[str, Role]:
    if not isinstance(raw, dict) or not raw:
        problems.append(f"{where}: roles: must be a non-empty object")
        return {}
    out: Dict[str, Role] = {}
    keys = (
        "family",
        "description",
        "services",
        "disks",
        "config_dir",
        "templates",
        "params",
        "hostname_pattern",
        "hostname_example",
    )
    optional = ("galera", "readiness", "round_robin")
    for role_id, info in raw.items():
        at = f"{where}: roles.{role_id}"
        if not ROLE_ID.match(role_id):
            problems.append(at + ": role id must match " + ROLE_ID.pattern)
        if not isinstance(info, dict):
            problems.append(at + ": must be an object")
            continue
        _unknown_keys(info, keys + optional, at, problems)
        missing = [k for k in keys if k not in info]
        if missing:
            problems.append(at + f": missing keys {missing}")
            continue
        if info["family"] not in families:
            problems.append(
                at + ".family: {!r} is not one of {}".format(info["family"], sorted(families))
            )
        services = info["services"]
        if (
            not isinstance(services, list)
            or not services
            or not all(isinstance(s, str) and SERVICE.match(s) for s in services)
        ):
            problems.append(at + ".services: must be a non-empty list of NAME.service")
            services = []
        role_disks = info["disks"]
        if not isinstance(role_disks, list) or any(d not in disks for d in role_disks):
            problems.append(at + f".disks: must list serials defined under disks ({sorted(disks)})")
            role_disks = None
        config_dir = info["config_dir"]
        allowed_dirs = [disks[d].mount + "/" for d in role_disks or []] + ["/etc/appcore/conf/"]
        if role_disks is None:
            role_disks = []  # config_dir cannot be checked against unknown disks
        elif (
            not isinstance(config_dir, str)
            or not any(config_dir.startswith(p) for p in allowed_dirs)
            or ".." in config_dir
        ):
            problems.append(at + f".config_dir: must be under {allowed_dirs}")
        templates = info["templates"]
        if not isinstance(templates, dict) or not all(
            FILE_NAME.match(k) and isinstance(v, str) and FILE_NAME.match(v)
            for k, v in templates.items()
        ):
            problems.append(at + ".templates: must map file name -> template file name")
            templates = {}
        params = info["params"]
        if not isinstance(params, dict) or not all(
            PARAM.match(k)
            and k not in BUILTIN_VARS + ("role",)
            and (v is None or isinstance(v, str))
            for k, v in params.items()
        ):
            problems.append(
                at + ".params: must map lower_case name -> default string or null "
                f"(null = required), not shadowing {BUILTIN_VARS}"
            )
            params = {}
        pattern = info["hostname_pattern"]
        try:
            if not (pattern.startswith("^") and pattern.endswith("$")):
                raise ValueError("must be anchored with ^...$")
            re.compile(pattern)
        except (ValueError, re.error, AttributeError) as exc:
            problems.append(at + f".hostname_pattern: {exc}")
        out[role_id] = Role(
            role_id,
            str(info["family"]),
            str(info["description"]),
            list(services),
            list(role_disks),
            str(config_dir),
            dict(templates),
            dict(params),
            str(pattern),
            str(info["hostname_example"]),
            where,
            _galera(info.get("galera"), at, problems),
            _readiness(info.get("readiness"), info["params"], at, problems),
            _round_robin(info.get("round_robin"), at, problems),
        )
    return out


def _galera(raw: Any, at: str, problems: List[str]) -> Optional[Dict[str, str]]:
    if raw is None:
        return None
    keys = ("flavour", "datadir", "defaults_file")
    if (
        not isinstance(raw, dict)
        or sorted(raw) != sorted(keys)
        or raw.get("flavour") not in GALERA_FLAVOURS
        or not all(isinstance(raw[k], str) and raw[k].startswith("/") for k in keys[1:])
    ):
        problems.append(
            at + f".galera: must be {{flavour: one of {list(GALERA_FLAVOURS)}, datadir: /PATH, "
            "defaults_file: /PATH}"
        )
        return None
    return {k: str(raw[k]) for k in keys}


def _round_robin(raw: Any, at: str, problems: List[str]) -> Optional[Dict[str, str]]:
    if raw is None:
        return None
    keys = ("kind", "tool", "datadir", "defaults_file")
    if (
        not isinstance(raw, dict)
        or sorted(raw) != sorted(keys)
        or raw.get("kind") not in RR_KINDS
        or raw.get("tool") not in RR_TOOLS
        or not all(isinstance(raw[k], str) and raw[k].startswith("/") for k in keys[2:])
    ):
        problems.append(
            at + f".round_robin: must be {{kind: one of {list(RR_KINDS)}, tool: one of "
            f"{sorted(RR_TOOLS)}, datadir: /PATH, defaults_file: /PATH}}"
        )
        return None
    return {k: str(raw[k]) for k in keys}


def _readiness(raw: Any, params: Any, at: str, problems: List[str]) -> Optional[str]:
    if raw is None:
        return None
    if raw not in READINESS_KINDS:
        problems.append(at + f".readiness: must be one of {list(READINESS_KINDS)}")
        return None
    if not isinstance(params, dict) or not {"ip", "peers"} <= set(params):
        problems.append(at + ".readiness: the role needs the params ip and peers to be asked")
        return None
    return str(raw)


def _unknown_keys(info: Dict[str, Any], allowed: Any, at: str, problems: List[str]) -> None:
    unknown = sorted(set(info) - set(allowed))
    if unknown:
        problems.append(at + f": unknown keys {unknown}")


def template_identifiers(text: str) -> List[str]:
    """Placeholders used by a string.Template text; invalid ones are reported as '<invalid>'."""
    names = []
    for match in string.Template.pattern.finditer(text):
        if match.group("invalid") is not None:
            names.append("<invalid>")
        name = match.group("named") or match.group("braced")
        if name:
            names.append(name)
    return names


def _check_templates(catalogue: Catalogue, problems: List[str]) -> None:
    for role in catalogue.roles.values():
        known = set(BUILTIN_VARS) | set(role.params)
        if "peers" in role.params:
            known |= set(PEER_VARS)
        for dest, name in sorted(role.templates.items()):
            try:
                text = catalogue.template_text(name)
            except CatalogueError as exc:
                problems.extend(exc.problems)
                continue
            unknown = sorted(set(template_identifiers(text)) - known)
            if unknown:
                problems.append(
                    f"{role.origin}: roles.{role.id}.templates.{dest}: template {name} uses "
                    f"unknown placeholders {unknown} (known: {sorted(known)})"
                )


def _check_hostnames(catalogue: Catalogue, problems: List[str]) -> None:
    """Each role's example hostname must match its own pattern and no other: patterns are strict."""
    for role in catalogue.roles.values():
        matching = sorted(r.id for r in catalogue.roles_for_hostname(role.hostname_example))
        if matching != [role.id]:
            problems.append(
                "{}: roles.{}.hostname_example: {!r} matches {} (must match only {})".format(
                    role.origin, role.id, role.hostname_example, matching or "no pattern", role.id
                )
            )
