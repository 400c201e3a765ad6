"""Role discovery. Every channel is read, the highest-precedence one wins and is recorded,
and any disagreement between channels is a conflict (fail closed).

Precedence, highest first: kernel command line, SMBIOS type 11 OEM strings, QEMU fw_cfg,
cloud-init NoCloud `cidata` meta-data, hostname pattern, /etc/appcore/role.
"""

import glob
import os
import re
import shlex
from typing import Dict, List, NamedTuple, Optional

from appcore.catalogue import Catalogue
from appcore.errors import RoleError
from appcore.hostfs import Host
from appcore.runner import Runner

SOURCES = ("cmdline", "smbios", "fw_cfg", "cidata", "hostname", "etc")
VALUE = re.compile(r"^[A-Za-z0-9._:,-]{1,253}$")  # keeps rendered configs free of injection
KEY = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
FW_CFG_DIR = "/sys/firmware/qemu_fw_cfg/by_name/opt/appcore"
CIDATA_MOUNT = "/run/appcore/cidata"
CIDATA_SEEDS = (
    "/var/lib/cloud/seed/nocloud/meta-data",
    "/var/lib/cloud/seed/nocloud-net/meta-data",
)


class Finding(NamedTuple):
    source: str
    key: str
    value: str
    detail: str


class Discovery(NamedTuple):
    role: str
    source: str
    detail: str
    findings: List[Finding]
    params: Dict[str, str]
    notes: List[str]


def read_cmdline(host: Host) -> List[Finding]:
    """`appcore.KEY=VALUE` words on the kernel command line (break-glass channel)."""
    if not host.exists("/proc/cmdline"):
        return []
    text = host.read_text("/proc/cmdline")
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    out = []
    for word in words:
        if word.startswith("appcore.") and "=" in word:
            key, value = word[len("appcore.") :].split("=", 1)
            out.append(Finding("cmdline", key, value, "/proc/cmdline"))
    return out


def parse_smbios_type11(raw: bytes) -> List[str]:
    """Strings of one raw SMBIOS type 11 structure: formatted area, then NUL-ended strings."""
    if len(raw) < 5 or raw[0] != 11:
        return []
    strings = []
    for chunk in raw[raw[1] :].split(b"\0"):
        if not chunk:
            break  # the string set ends with a double NUL
        strings.append(chunk.decode("utf-8", "replace"))
    return strings


def read_smbios(host: Host) -> List[Finding]:
    """`appcore:KEY=VALUE` OEM strings (libvirt <sysinfo type='smbios'><oemStrings>)."""
    out = []
    pattern = host.path("/sys/firmware/dmi/entries") + "/11-*/raw"
    for raw_path in sorted(glob.glob(pattern)):
        with open(raw_path, "rb") as fh:
            strings = parse_smbios_type11(fh.read(65536))
        entry = os.path.basename(os.path.dirname(raw_path))
        for index, text in enumerate(strings, 1):
            if text.startswith("appcore:") and "=" in text:
                key, value = text[len("appcore:") :].split("=", 1)
                out.append(Finding("smbios", key, value, f"type 11 {entry} string {index}"))
    return out


def read_fw_cfg(host: Host, runner: Runner) -> List[Finding]:
    """QEMU fw_cfg entries opt/appcore/KEY (the qemu_fw_cfg module may need loading first)."""
    if not host.exists("/sys/firmware/qemu_fw_cfg"):
        runner.run(["modprobe", "-q", "qemu_fw_cfg"], check=False)
    out: List[Finding] = []
    base = host.path(FW_CFG_DIR)
    if not os.path.isdir(base):
        return out
    for key in sorted(os.listdir(base)):
        raw = os.path.join(base, key, "raw")
        if os.path.isfile(raw):
            with open(raw, "rb") as fh:
                value = fh.read(4096).decode("utf-8", "replace").strip()
            out.append(Finding("fw_cfg", key, value, "fw_cfg opt/appcore/" + key))
    return out


def parse_meta_data(text: str) -> Dict[str, str]:
    """Top-level `key: value` lines of NoCloud meta-data (YAML subset; JSON objects also work)."""
    out = {}
    for line in text.splitlines():
        match = re.match(r'^"?([A-Za-z0-9_-]+)"?\s*:\s*"?([^"#,]*?)"?\s*,?\s*(#.*)?$', line)
        if match:
            out[match.group(1)] = match.group(2).strip().strip("'")
    return out


def read_cidata(host: Host, runner: Runner) -> List[Finding]:
    """Meta-data key `appcore-role` (and appcore-KEY) from a NoCloud seed.

    Uses cloud-init's copied seed when present, else mounts the `cidata` volume read-only.
    """
    text, detail = None, ""
    for seed in CIDATA_SEEDS:
        if host.exists(seed):
            text, detail = host.read_text(seed), seed
            break
    if text is None:
        device = next(
            (
                d
                for d in ("/dev/disk/by-label/cidata", "/dev/disk/by-label/CIDATA")
                if host.exists(d)
            ),
            None,
        )
        if device is None:
            return []
        host.makedirs(CIDATA_MOUNT)
        runner.run(
            [
                "mount",
                "-t",
                "iso9660,vfat",
                "-o",
                "ro,nodev,nosuid,noexec",
                host.path(device),
                host.path(CIDATA_MOUNT),
            ]
        )
        try:
            if host.exists(CIDATA_MOUNT + "/meta-data"):
                text, detail = host.read_text(CIDATA_MOUNT + "/meta-data"), device + " meta-data"
        finally:
            runner.run(["umount", host.path(CIDATA_MOUNT)], check=False)
    out = []
    for key, value in sorted(parse_meta_data(text or "").items()):
        if key.startswith("appcore-"):
            out.append(Finding("cidata", key[len("appcore-") :].replace("-", "_"), value, detail))
        elif key == "local-hostname":
            out.append(Finding("cidata", "hostname", value, detail))
    return out


def current_hostname(host: Host) -> str:
    for path in ("/proc/sys/kernel/hostname", "/etc/hostname"):
        if host.exists(path):
            name = host.read_text(path).strip()
            if name:
                return name
    return ""


def read_hostname(host: Host, catalogue: Catalogue) -> List[Finding]:
    """A role whose strict hostname pattern matches the current hostname (last-resort channel)."""
    name = current_hostname(host)
    return [
        Finding("hostname", "role", role.id, f"hostname {name!r} matches {role.hostname_pattern}")
        for role in catalogue.roles_for_hostname(name)
    ]


def read_etc(host: Host) -> List[Finding]:
    """/etc/appcore/role: one role ID; blank lines and # comments are ignored."""
    if not host.exists("/etc/appcore/role"):
        return []
    lines = [ln.split("#", 1)[0].strip() for ln in host.read_text("/etc/appcore/role").splitlines()]
    return [Finding("etc", "role", ln, "/etc/appcore/role") for ln in lines if ln]


def collect(host: Host, runner: Runner, catalogue: Catalogue) -> List[Finding]:
    """All findings from all channels, in precedence order."""
    return (
        read_cmdline(host)
        + read_smbios(host)
        + read_fw_cfg(host, runner)
        + read_cidata(host, runner)
        + read_hostname(host, catalogue)
        + read_etc(host)
    )


def resolve(findings: List[Finding], catalogue: Catalogue) -> Discovery:
    """Pick the role (first source wins), or raise RoleError: none, unknown, invalid, conflict."""
    notes = []
    roles = [f for f in findings if f.key == "role"]
    if not roles:
        raise RoleError(
            "no role found in any channel ({}); configuring nothing. Set e.g. "
            "<oemStrings><entry>appcore:role=APP</entry></oemStrings>".format(", ".join(SOURCES))
        )
    for finding in roles:
        if catalogue.find_role(finding.value) is None:
            raise RoleError(
                "unknown role {!r} from {} ({}); known roles: {}".format(
                    finding.value,
                    finding.source,
                    finding.detail,
                    ", ".join(sorted(catalogue.roles)),
                )
            )
    resolved = [catalogue.roles[f.value.strip().upper()] for f in roles]  # all known, see above
    distinct = sorted({r.id for r in resolved})
    if len(distinct) > 1:
        raise RoleError(
            "conflicting roles {}: {}; configuring nothing".format(
                distinct, "; ".join(f"{f.source}={f.value} ({f.detail})" for f in roles)
            )
        )
    winner = roles[0]
    params: Dict[str, str] = {}
    for finding in findings:
        if finding.key == "role" or finding.key in params:
            continue  # first (highest-precedence) value of each key wins
        if not KEY.match(finding.key) or not VALUE.match(finding.value):
            notes.append(
                f"ignored {finding.source}:{finding.key}={finding.value!r}: key or value has "
                f"characters outside {VALUE.pattern}"
            )
            continue
        params[finding.key] = finding.value
    return Discovery(resolved[0].id, winner.source, winner.detail, findings, params, notes)


def discover(host: Host, runner: Runner, catalogue: Catalogue) -> Discovery:
    return resolve(collect(host, runner, catalogue), catalogue)


def role_summary(findings: Optional[List[Finding]]) -> List[Dict[str, str]]:
    return [f._asdict() for f in findings or []]
