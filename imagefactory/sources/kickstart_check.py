"""The factory's own kickstart rules, beyond what ksvalidator checks (syntax only).

`check_kickstart` reads a rendered kickstart and returns every problem it finds, each with
the file and line: the CIS partition layout and mount options, encrypted passwords only,
SELinux enforcing, the firewall on, and the audit kernel arguments. `min_disk_mib` sizes the
disk the kickstart's partitions and logical volumes need.

Kickstart is line based: a command and its options on one line (a trailing backslash joins
the next line here, though anaconda itself does not), `#` comments, and `%section ... %end`
blocks whose contents (packages, scripts) are not commands and are skipped.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from imagefactory.errors import Problem

GRUB_HASH = re.compile(r"^grub\.pbkdf2\.sha512\.\d+\.[0-9A-F]+\.[0-9A-F]+$")
CRYPT_HASH = re.compile(r"^\$[0-9a-z]+\$\S+$")  # crypt(3): $6$salt$hash, $y$..., $5$...

REQUIRED_MOUNTS = ("/boot", "/", "/tmp", "/var", "/var/tmp", "/var/log", "/var/log/audit", "/home")
UEFI_MOUNT = "/boot/efi"
NOEXEC = ("nodev", "nosuid", "noexec")
REQUIRED_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "/tmp": NOEXEC,
    "/var/tmp": NOEXEC,
    "/var/log": NOEXEC,
    "/var/log/audit": NOEXEC,
    "/var": ("nodev", "nosuid"),
    "/home": ("nodev", "nosuid"),
}
AUDIT_BACKLOG = 8192
REQUIRED_KERNEL_ARGS = f"audit=1 audit_backlog_limit={AUDIT_BACKLOG}"

# Options whose value may follow as the next word (`--size 1024`); any other `--x` without
# `=` is a flag.
_VALUE_NAMES = """append boot-drive cipher device driveorder fsoptions fsprofile fstype gecos gid
groups homedir label location maxsize mkfsoptions name ondisk ondrive onpart passphrase password
percent pesize port reserved-percent service shell size uid username usepart vgname"""
_VALUE_OPTIONS = frozenset(_VALUE_NAMES.split())
_SECTIONS = re.compile(r"^%(packages|pre|pre-install|post|onerror|traceback|addon|anaconda)\b")
_STORAGE = ("part", "partition", "logvol")
_PE_DEFAULT_MIB = 4  # LVM's default physical extent
_TABLE_MIB = 2  # the partition table and alignment at the start and the end of the disk


@dataclass(frozen=True)
class Command:
    """One kickstart command: its first line number, name, positional words and options."""

    line: int
    name: str
    words: tuple[str, ...]
    options: Mapping[str, str | None]

    def has(self, option: str) -> bool:
        return option in self.options

    def value(self, option: str) -> str | None:
        return self.options.get(option)


def parse_commands(text: str, file: str) -> tuple[list[Command], list[Problem]]:
    """The commands outside %sections, and any line that cannot be read."""
    commands: list[Command] = []
    problems: list[Problem] = []
    section: int | None = None  # line where the open %section started
    for line, logical in _logical_lines(text):
        stripped = logical.strip()
        if section is not None:
            if stripped.split()[:1] == ["%end"]:
                section = None
            continue
        if not stripped or stripped.startswith("#"):
            continue
        if _SECTIONS.match(stripped):
            section = line
            continue
        try:
            words = shlex.split(logical, comments=True)
        except ValueError as exc:
            problems.append(Problem(file, f"line {line}", f"cannot read the line: {exc}"))
            continue
        if words:
            commands.append(_command(line, words))
    if section is not None:
        problems.append(Problem(file, f"line {section}", "section is not closed with %end"))
    return commands, problems


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, text) with backslash-continued lines joined."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if raw.endswith("\\") and not raw.lstrip().startswith("#"):
            pending.append(raw[:-1])
            continue
        pending.append(raw)
        yield start, " ".join(pending)
        pending = []
    if pending:
        yield start, " ".join(pending)


def _command(line: int, words: list[str]) -> Command:
    positional: list[str] = []
    options: dict[str, str | None] = {}
    rest = iter(words[1:])
    for word in rest:
        if not word.startswith("--"):
            positional.append(word)
            continue
        name, eq, value = word[2:].partition("=")
        if eq:
            options[name] = value
        elif name in _VALUE_OPTIONS:
            options[name] = next(rest, None)
        else:
            options[name] = None
    return Command(line, words[0], tuple(positional), options)


def check_kickstart(text: str, file: str, *, uefi: bool = False) -> list[Problem]:
    """Every problem with the factory's rules in one kickstart (empty when it is clean)."""
    commands, problems = parse_commands(text, file)
    end = len(text.splitlines()) or 1
    problems += _layout_problems(commands, file, uefi, end)
    problems += _password_problems(commands, file)
    problems += _security_problems(commands, file, end)
    return sorted(problems, key=lambda p: int(p.path.split()[-1]))


def _where(cmd: Command) -> str:
    return f"line {cmd.line}"


def _mounts(commands: list[Command]) -> list[tuple[str, Command]]:
    """(mount point, command) of every part/partition/logvol that mounts a filesystem."""
    return [
        (cmd.words[0].rstrip("/") or "/", cmd)
        for cmd in commands
        if cmd.name in _STORAGE and cmd.words and cmd.words[0].startswith("/")
    ]


def _layout_problems(commands: list[Command], file: str, uefi: bool, end: int) -> list[Problem]:
    out: list[Problem] = []
    first: dict[str, Command] = {}
    for mount, cmd in _mounts(commands):
        if mount in first:
            out.append(
                Problem(
                    file,
                    _where(cmd),
                    f"mount point {mount} is defined twice (first on line {first[mount].line})",
                )
            )
            continue
        first[mount] = cmd
        needed = REQUIRED_OPTIONS.get(mount, ())
        have = set((cmd.value("fsoptions") or "").split(","))
        missing = [o for o in needed if o not in have]
        if missing:
            out.append(
                Problem(
                    file,
                    _where(cmd),
                    f"{mount} is mounted without {','.join(missing)}",
                    f'--fsoptions="{",".join(needed)}"',
                )
            )
    storage = [c for c in commands if c.name in _STORAGE]
    anchor = f"line {storage[-1].line if storage else end}"
    required = REQUIRED_MOUNTS + ((UEFI_MOUNT,) if uefi else ())
    for mount in required:
        if mount not in first:
            extra = " (a UEFI boot needs an EFI system partition)" if mount == UEFI_MOUNT else ""
            out.append(Problem(file, anchor, f"no partition or logical volume for {mount}{extra}"))
    efi = first.get(UEFI_MOUNT)
    if uefi and efi is not None and efi.value("fstype") != "efi":
        out.append(Problem(file, _where(efi), f"{UEFI_MOUNT} needs --fstype=efi"))
    return out


def _password_problems(commands: list[Command], file: str) -> list[Problem]:
    out: list[Problem] = []
    for cmd in commands:
        where = _where(cmd)
        if cmd.has("plaintext"):
            out.append(Problem(file, where, f"{cmd.name} --plaintext: a plain-text password"))
            continue
        if cmd.name in ("rootpw", "sshpw"):
            secret = cmd.words[0] if cmd.words else None
            option = ""
        elif cmd.name == "user":
            secret, option = cmd.value("password"), "--password "
        else:
            continue
        if secret is None:
            if cmd.name == "rootpw" and not cmd.has("lock"):
                out.append(Problem(file, where, "rootpw sets no password and does not --lock"))
        elif not cmd.has("iscrypted"):
            out.append(
                Problem(
                    file,
                    where,
                    f"{cmd.name} {option}without --iscrypted: a plain-text password",
                    "use a crypt(3) hash with --iscrypted, or --lock",
                )
            )
        elif not CRYPT_HASH.match(secret):
            out.append(
                Problem(file, where, f"{cmd.name} {option}--iscrypted value is not a crypt(3) hash")
            )
    return out


def _security_problems(commands: list[Command], file: str, end: int) -> list[Problem]:
    out: list[Problem] = []
    last = {c.name: c for c in commands}
    selinux = last.get("selinux")
    if selinux is not None and (selinux.has("disabled") or selinux.has("permissive")):
        mode = "disabled" if selinux.has("disabled") else "permissive"
        out.append(
            Problem(
                file,
                _where(selinux),
                f"selinux --{mode}: SELinux must be enforcing",
                "selinux --enforcing",
            )
        )
    firewall = last.get("firewall")
    if firewall is not None and (firewall.has("disabled") or firewall.has("disable")):
        out.append(
            Problem(
                file,
                _where(firewall),
                "firewall is disabled; it must be enabled",
                "firewall --enabled --service=ssh",
            )
        )
    for cmd in commands:
        if cmd.name != "bootloader" or not cmd.has("password"):
            continue
        if not cmd.has("iscrypted"):
            out.append(
                Problem(
                    file,
                    _where(cmd),
                    "bootloader --password without --iscrypted: a plain-text password",
                    "use a grub2-mkpasswd-pbkdf2 hash with --iscrypted",
                )
            )
        elif not GRUB_HASH.match(cmd.value("password") or ""):
            out.append(
                Problem(
                    file,
                    _where(cmd),
                    "bootloader --password is not a "
                    "grub2-mkpasswd-pbkdf2 hash (grub.pbkdf2.sha512.…)",
                )
            )
    boot = last.get("bootloader")
    if boot is None:
        out.append(
            Problem(
                file,
                f"line {end}",
                "no bootloader command",
                f'bootloader --append="{REQUIRED_KERNEL_ARGS}" --iscrypted '
                "--password=grub.pbkdf2.sha512.…",
            )
        )
        return out
    if not boot.has("password"):
        out.append(
            Problem(
                file,
                _where(boot),
                "bootloader sets no password",
                "--iscrypted --password=grub.pbkdf2.sha512.…",
            )
        )
    args: dict[str, str] = {}
    for arg in (boot.value("append") or "").split():
        key, _, val = arg.partition("=")
        args[key] = val
    if args.get("selinux") == "0" or args.get("enforcing") == "0":
        out.append(
            Problem(
                file,
                _where(boot),
                "bootloader --append turns SELinux off (selinux=0 or enforcing=0)",
            )
        )
    missing = []
    if args.get("audit") != "1":
        missing.append("audit=1")
    backlog = args.get("audit_backlog_limit", "")
    if not (backlog.isdigit() and int(backlog) >= AUDIT_BACKLOG):
        missing.append(f"audit_backlog_limit={AUDIT_BACKLOG}")
    if missing:
        out.append(
            Problem(
                file,
                _where(boot),
                f"bootloader --append lacks {' '.join(missing)}",
                f'--append="{REQUIRED_KERNEL_ARGS}"',
            )
        )
    return out


def _mib(value: str | None) -> int:
    return int(value) if value is not None and value.isdigit() else 0


def min_disk_mib(text: str) -> int:
    """The smallest disk (MiB) that holds the kickstart's partitions and logical volumes.

    Partitions count with their --size (the minimum of a --grow one). A volume group's
    physical volumes must hold its logical volumes, each rounded up to whole extents, plus
    one extent per physical volume for LVM metadata and alignment. --percent volumes and
    partitions without a --size count as nothing.
    """
    commands, _ = parse_commands(text, "")
    parts = [
        (c.words[0], _mib(c.value("size")))
        for c in commands
        if c.name in ("part", "partition") and c.words
    ]
    groups: dict[str, tuple[int, list[str]]] = {}  # name -> (extent MiB, physical volumes)
    for cmd in commands:
        if cmd.name == "volgroup" and cmd.words:
            pe = _mib(cmd.value("pesize")) // 1024 or _PE_DEFAULT_MIB  # --pesize is in KiB
            groups[cmd.words[0]] = (pe, list(cmd.words[1:]))
    lvs: dict[str, int] = {}
    for cmd in commands:
        if cmd.name == "logvol" and not cmd.has("percent"):
            vg = cmd.value("vgname") or ""
            pe = groups.get(vg, (_PE_DEFAULT_MIB, []))[0]
            lvs[vg] = lvs.get(vg, 0) + -(-_mib(cmd.value("size")) // pe) * pe
    in_groups = {pv for _, pvs in groups.values() for pv in pvs}
    total = sum(size for name, size in parts if name not in in_groups)
    for vg, (pe, pvs) in groups.items():
        own = sum(size for name, size in parts if name in pvs)
        total += max(own, lvs.pop(vg, 0) + pe * len(pvs))
    return total + sum(lvs.values()) + _TABLE_MIB
