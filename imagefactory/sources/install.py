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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagefactory.errors import BuildError, ConfigError, Problem
from imagefactory.guest.credential import BuildKey
from imagefactory.sources.kickstart_check import GRUB_HASH, check_kickstart, min_disk_mib

if TYPE_CHECKING:  # config imports this module to validate the settings
    from imagefactory.config import Config, IsoSource, LayerDef

GRUB_HASH_ENV = "IMAGEFACTORY_GRUB_PASSWORD_HASH"
FIRMWARE_VAR = "IF_FIRMWARE"
DISK_VAR = "IF_DISK_SIZE_MIB"
FIRMWARES = ("bios", "uefi")
DEFAULT_DISK_MIB = 21504  # the smallest whole GiB that holds kickstart/ol8.ks (BIOS and UEFI)
# OVMF from Debian's `ovmf` package, given to QEMU as -bios (Packer 1.6.6 has no firmware
# option): QEMU maps a read-only copy of the file as the ROM, so the file is never written
# and concurrent VMs can share it. No NVRAM file (OVMF keeps its variables in memory for the
# boot). Assumption: OVMF finds the disk's fallback loader \EFI\BOOT\BOOTX64.EFI, which
# anaconda installs with shim on OL8, so no boot entry has to survive from the install; after
# the install the kickstart ejects the DVD.
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE.fd")
UEFI_ONLY = "@UEFI_ONLY@"  # kickstart line prefix: kept for UEFI, commented out for BIOS


@dataclass(frozen=True)
class InstallSettings:
    firmware: str = "bios"
    disk_size_mib: int = DEFAULT_DISK_MIB


def install_settings(variables: Mapping[str, str | int | bool]) -> InstallSettings:
    """The settings of a validated install layer (see settings_problems)."""
    return InstallSettings(
        firmware=str(variables.get(FIRMWARE_VAR, "bios")),
        disk_size_mib=int(variables.get(DISK_VAR, DEFAULT_DISK_MIB)),
    )


def firmware_of(cfg: Config, family: str) -> str:
    """How every layer of `family` boots, and its sealed image: as its root layer was
    installed. An install layer says so in IF_FIRMWARE (validated); any other root (the
    stand-in) is BIOS. Part of each layer's key through the parent chain only: IF_FIRMWARE is
    an input of the install layer."""
    from imagefactory.config import IsoSource  # config imports this module

    root = cfg.layers[cfg.family(family).layers[0]]
    if isinstance(cfg.sources.get(root.source or ""), IsoSource):
        return install_settings(root.variables).firmware
    return "bios"


def uefi_firmware(firmware: str) -> str:
    """The `uefi_firmware` variable of the Packer templates: the OVMF image QEMU boots with
    -bios for UEFI, "" for BIOS (QEMU's default SeaBIOS)."""
    if firmware != "uefi":
        return ""
    if not OVMF_CODE.is_file():
        raise BuildError(
            f"{OVMF_CODE} not found: a UEFI image ({FIRMWARE_VAR}: uefi) boots with OVMF "
            "(apt-get install ovmf)"
        )
    return str(OVMF_CODE)


def kickstart_of(layer: LayerDef) -> Path | None:
    kickstarts = [f for f in layer.files if f.suffix == ".ks"]
    return kickstarts[0] if len(kickstarts) == 1 else None


def settings_problems(cfg: Config, layer: LayerDef) -> list[Problem]:
    """Problems with an ISO install layer's variables and kickstart (config validation)."""
    file, where = str(cfg.path), f".layers.{layer.name}"
    out: list[Problem] = []
    for name in layer.variables:
        if name not in (FIRMWARE_VAR, DISK_VAR):
            out.append(
                Problem(
                    file,
                    f"{where}.variables.{name}",
                    "not a setting of an install layer",
                    f"an install layer takes {FIRMWARE_VAR} and {DISK_VAR}",
                )
            )
    firmware = layer.variables.get(FIRMWARE_VAR, "bios")
    if firmware not in FIRMWARES:
        out.append(
            Problem(
                file,
                f"{where}.variables.{FIRMWARE_VAR}",
                f"'{firmware}' is not a firmware",
                "one of: bios, uefi",
            )
        )
    disk = layer.variables.get(DISK_VAR, DEFAULT_DISK_MIB)
    if isinstance(disk, bool) or not isinstance(disk, int):
        out.append(
            Problem(
                file,
                f"{where}.variables.{DISK_VAR}",
                f"'{disk}' is not a whole number of MiB",
                "e.g. 21504",
            )
        )
    kickstart = kickstart_of(layer)
    if kickstart is None:
        out.append(
            Problem(
                file,
                f"{where}.files",
                "an install layer needs exactly one .ks file",
                "e.g. files: [kickstart/ol8.ks]",
            )
        )
    elif kickstart.is_file() and isinstance(disk, int) and firmware in FIRMWARES:
        need = min_disk_mib(for_firmware(kickstart.read_text(), str(firmware)))
        if disk < need:
            given = "" if DISK_VAR in layer.variables else " (the default)"
            out.append(
                Problem(
                    file,
                    f"{where}.variables.{DISK_VAR}",
                    f"{disk} MiB{given} is too small: the partitions and logical volumes of "
                    f"{cfg.relpath(kickstart)} need at least {need} MiB ({firmware})",
                    f"{DISK_VAR}: {math.ceil(need / 1024) * 1024}",
                )
            )
    return out


def grub_password_hash() -> str:
    """The bootloader password hash from the build host's environment (never plaintext)."""
    value = os.environ.get(GRUB_HASH_ENV, "")
    if not GRUB_HASH.match(value):
        raise BuildError(
            f"{GRUB_HASH_ENV} must hold a grub2-mkpasswd-pbkdf2 hash "
            "(grub.pbkdf2.sha512.…); it is not set or not such a hash"
        )
    return value


def for_firmware(text: str, firmware: str) -> str:
    """Keep the kickstart's UEFI-only lines for UEFI; comment them out for BIOS."""
    return text.replace(UEFI_ONLY, "" if firmware == "uefi" else "# UEFI only: ")


def render_kickstart(
    template: Path,
    out: Path,
    *,
    build_user: str,
    key: BuildKey,
    grub_hash: str,
    firmware: str = "bios",
    shown: str | None = None,
) -> None:
    """Fill in the template, check it (every problem at once) and only then write it.

    `shown` names the template in problems (default: its path); the line numbers are the
    template's, as every value fills exactly one line.
    """
    values = {
        "@BUILD_USER@": build_user,
        "@BUILD_PUBKEY@": key.public_line,
        "@GRUB_PASSWORD_HASH@": grub_hash,
    }
    for marker, value in values.items():
        if "\n" in value or "\r" in value:
            raise BuildError(f"{template}: the value for {marker} spans more than one line")
    text = for_firmware(template.read_text(), firmware)
    for marker, value in values.items():
        text = text.replace(marker, value)
    left = sorted(set(re.findall(r"@[A-Z_]+@", text)))
    if left:
        raise BuildError(f"{template}: unknown placeholders {', '.join(left)}")
    problems = check_kickstart(text, shown or str(template), uefi=firmware == "uefi")
    if problems:
        raise ConfigError(problems)
    out.write_text(text)
    out.chmod(0o644)


def packer_variables(
    cfg: Config, layer: LayerDef, src: IsoSource, iso: Path, http_dir: Path, key: BuildKey
) -> dict[str, Any]:
    kickstart = kickstart_of(layer)
    if kickstart is None:
        raise BuildError(f"layer {layer.name}: needs exactly one .ks file in files:")
    settings = install_settings(layer.variables)
    firmware_file = uefi_firmware(settings.firmware)
    render_kickstart(
        kickstart,
        http_dir / "ol8.ks",
        build_user=cfg.build.build_user,
        key=key,
        grub_hash=grub_password_hash(),
        firmware=settings.firmware,
        shown=cfg.relpath(kickstart),
    )
    return {
        "iso_path": str(iso),
        "iso_sha256": src.sha256,
        "http_dir": str(http_dir),
        "disk_size_mib": settings.disk_size_mib,
        "uefi_firmware": firmware_file,
    }
