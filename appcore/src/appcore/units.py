"""systemd unit files App-Core writes at run time, and the check that a service is installed."""

from typing import List

from appcore.catalogue import Disk, Role
from appcore.hostfs import Host

UNIT_DIR = "/etc/systemd/system"
UNIT_SEARCH = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/run/systemd/generator",
    "/run/systemd/generator.late",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
)
DROPIN_NAME = "50-appcore.conf"
HEADER = "# Written by appcore at boot from the role catalogue. Do not edit: it is rewritten.\n"


def mount_unit_name(mount_point: str) -> str:
    """systemd's path escaping for the simple /data/xx paths the catalogue allows."""
    return mount_point.strip("/").replace("-", "\\x2d").replace("/", "-") + ".mount"


def by_id(serial: str) -> str:
    return "/dev/disk/by-id/virtio-" + serial


def render_mount_unit(disk: Disk, fstype: str) -> str:
    """Mount gated by appcore-disk@SERIAL.service, which re-checks the disk before each mount,
    so a service pulling the mount early at boot can never mount an unchecked disk."""
    check = f"appcore-disk@{disk.serial}.service"
    return HEADER + (
        "[Unit]\n"
        f"Description=App-Core data disk {disk.serial} on {disk.mount}\n"
        # No DefaultDependencies: the data mount must not hold up local-fs.target.
        "DefaultDependencies=no\n"
        f"Requires={check}\n"
        f"After={check} local-fs-pre.target\n"
        "Conflicts=umount.target\n"
        "Before=umount.target\n"
        "\n"
        "[Mount]\n"
        f"What={by_id(disk.serial)}\n"
        f"Where={disk.mount}\n"
        f"Type={fstype}\n"
        f"Options={disk.options}\n"
    )


def render_dropin(role: Role, mounts: List[str]) -> str:
    """Service drop-in: no start without appcore's success, and never without the data mount."""
    lines = [HEADER.rstrip("\n"), "[Unit]", "Requires=appcore.service", "After=appcore.service"]
    if mounts:
        lines.append("RequiresMountsFor=" + " ".join(mounts))
    lines.append(f"# role {role.id} ({role.description})")
    return "\n".join(lines) + "\n"


def dropin_path(service: str) -> str:
    return f"{UNIT_DIR}/{service}.d/{DROPIN_NAME}"


def unit_installed(host: Host, unit: str) -> bool:
    """A unit file (or its template for foo@bar.service) exists in a systemd unit directory."""
    names = [unit]
    if "@" in unit:
        prefix, suffix = unit.split("@", 1)
        names.append(prefix + "@" + suffix[suffix.rindex(".") :])
    return any(host.exists(d + "/" + n) for d in UNIT_SEARCH for n in names)
