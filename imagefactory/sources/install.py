"""The install layer: render the kickstart and drive the OL8 installer through Packer.

The install layer's settings are its `variables:` (so they are part of its key): IF_FIRMWARE
(bios or uefi: how the installer and the installed system boot) and IF_DISK_SIZE_MIB (the
virtual disk; at least what the kickstart's partitions need). The rendered kickstart must
pass the factory's own checks (imagefactory.sources.kickstart_check) before Packer starts.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagefactory import variables
from imagefactory.choices import Firmware
from imagefactory.errors import BuildError, ConfigError, Problem
from imagefactory.guest.credential import BuildCredential
from imagefactory.sources.kickstart_check import GRUB_HASH, check_kickstart, min_disk_mib

GRUB_HASH_ENV = "IMAGEFACTORY_GRUB_PASSWORD_HASH"
FIRMWARE_VAR = "IF_FIRMWARE"
DISK_VAR = "IF_DISK_SIZE_MIB"
UEFI_ONLY = "@UEFI_ONLY@"  # kickstart line prefix: kept for UEFI, commented out for BIOS


@dataclass(frozen=True)
class InstallSettings:
    firmware: Firmware
    disk_size_mib: int


def _defaults() -> dict[str, Any]:
    """The install layer's defaults, as its variables schema declares them."""
    props = variables.install_schema()["properties"]
    return {name: prop["default"] for name, prop in props.items()}


def install_settings(values: Mapping[str, str | int | bool]) -> InstallSettings:
    """The settings of a validated install layer (schema: install-variables.schema.json)."""
    merged = _defaults() | dict(values)
    return InstallSettings(Firmware(merged[FIRMWARE_VAR]), int(merged[DISK_VAR]))


def kickstart_of(files: Sequence[Path]) -> Path | None:
    kickstarts = [f for f in files if f.suffix == ".ks"]
    return kickstarts[0] if len(kickstarts) == 1 else None


def kickstart_problems(
    file: str,
    where: str,
    values: Mapping[str, str | int | bool],
    files: Sequence[Path],
    shown: Callable[[Path], str],
) -> list[Problem]:
    """An install layer's kickstart: exactly one, and the disk large enough for its layout.
    `values` passed its schema; `shown` names a path as the user wrote it."""
    kickstart = kickstart_of(files)
    if kickstart is None:
        return [
            Problem(
                file,
                f"{where}.files",
                "an install layer needs exactly one .ks file",
                "e.g. files: [kickstart/ol8.ks]",
            )
        ]
    if not kickstart.is_file():
        return []  # reported with the other missing files
    settings = install_settings(values)
    need = min_disk_mib(for_firmware(kickstart.read_text(), settings.firmware))
    if settings.disk_size_mib >= need:
        return []
    given = "" if DISK_VAR in values else " (the default)"
    return [
        Problem(
            file,
            f"{where}.variables.{DISK_VAR}",
            f"{settings.disk_size_mib} MiB{given} is too small: the partitions and logical "
            f"volumes of {shown(kickstart)} need at least {need} MiB ({settings.firmware})",
            f"{DISK_VAR}: {math.ceil(need / 1024) * 1024}",
        )
    ]


def grub_password_hash() -> str:
    """The bootloader password hash from the build host's environment (never plaintext)."""
    value = os.environ.get(GRUB_HASH_ENV, "")
    if not GRUB_HASH.match(value):
        raise BuildError(
            f"{GRUB_HASH_ENV} must hold a grub2-mkpasswd-pbkdf2 hash "
            "(grub.pbkdf2.sha512.…); it is not set or not such a hash"
        )
    return value


def for_firmware(text: str, firmware: Firmware) -> str:
    """Keep the kickstart's UEFI-only lines for UEFI; comment them out for BIOS."""
    return text.replace(UEFI_ONLY, "" if firmware is Firmware.UEFI else "# UEFI only: ")


def render_kickstart(
    template: Path,
    out: Path,
    *,
    build_user: str,
    credential: BuildCredential,
    grub_hash: str,
    firmware: Firmware = Firmware.BIOS,
    shown: str | None = None,
) -> None:
    """Fill in the template, check it (every problem at once) and only then write it.

    `shown` names the template in problems (default: its path); the line numbers are the
    template's, as every value fills exactly one line.
    """
    values = {
        "@BUILD_USER@": build_user,
        "@BUILD_PUBKEY@": credential.public_line,
        "@GRUB_PASSWORD_HASH@": grub_hash,
    }
    for marker, value in values.items():
        if "\n" in value or "\r" in value:
            raise BuildError(f"{template}: the value for {marker} spans more than one line")
    text = for_firmware(template.read_text(), Firmware(firmware))
    for marker, value in values.items():
        text = text.replace(marker, value)
    left = sorted(set(re.findall(r"@[A-Z_]+@", text)))
    if left:
        raise BuildError(f"{template}: unknown placeholders {', '.join(left)}")
    problems = check_kickstart(text, shown or str(template), uefi=firmware == Firmware.UEFI)
    if problems:
        raise ConfigError(problems)
    out.write_text(text)
    out.chmod(0o644)
