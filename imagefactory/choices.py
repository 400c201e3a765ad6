"""The closed choices of a build, each an enum that carries the behaviour that differs.

StrEnums: their values are what the config file, the keys and the manifest spell (a member
equals and serialises as its value); code compares members, never
strings, so a new member shows up as a missing branch here rather than in five modules.
"""

from __future__ import annotations

import enum
from pathlib import Path

from imagefactory.errors import BuildError

LAYER_IMAGE = "layer.qcow2"  # an overlay on its parent (or a root layer's whole disk)
SEALED_IMAGE = "image.qcow2"  # a flattened, standalone image: what gets published

# OVMF from Debian's `ovmf` package, given to QEMU as -bios (Packer 1.6.6 has no firmware
# option): QEMU maps a read-only copy of the file as the ROM, so the file is never written
# and concurrent VMs can share it. No NVRAM file (OVMF keeps its variables in memory for the
# boot). Assumption: OVMF finds the disk's fallback loader \EFI\BOOT\BOOTX64.EFI, which
# anaconda installs with shim on OL8, so no boot entry has to survive from the install.
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE.fd")


class Accelerator(enum.StrEnum):
    """`build.accelerator`: what the build VMs run on."""

    AUTO = "auto"  # probe KVM with a real guest, TCG with a warning if it hangs
    KVM = "kvm"
    TCG = "tcg"

    @property
    def needs_probe(self) -> bool:
        return self is Accelerator.AUTO


class Compression(enum.StrEnum):
    """`build.compression`: how the sealed qcow2 is compressed."""

    NONE = "none"
    ZLIB = "zlib"  # readable by every QEMU
    ZSTD = "zstd"  # faster and smaller; needs QEMU >= 5.1 on the readers

    @property
    def qemu_img_args(self) -> list[str]:
        return {
            Compression.NONE: [],
            Compression.ZLIB: ["-c"],
            Compression.ZSTD: ["-c", "-o", "compression_type=zstd"],
        }[self]


class Firmware(enum.StrEnum):
    """How a family's disks boot, decided by its root layer (install: IF_FIRMWARE)."""

    BIOS = "bios"  # QEMU's default SeaBIOS
    UEFI = "uefi"  # OVMF, read-only code, no NVRAM

    def ovmf(self) -> str:
        """The `uefi_firmware` variable of the Packer templates: the OVMF image QEMU boots
        with -bios for UEFI, "" for BIOS."""
        if self is Firmware.BIOS:
            return ""
        if not OVMF_CODE.is_file():
            raise BuildError(
                f"{OVMF_CODE} not found: a UEFI image (IF_FIRMWARE: uefi) boots with OVMF "
                "(apt-get install ovmf)"
            )
        return str(OVMF_CODE)

    def qemu_args(self) -> list[str]:
        path = self.ovmf()
        return ["-bios", path] if path else []


class LayerKind(enum.StrEnum):
    """What a layer is. Its value is part of every layer key ("layer" for a scripts layer)."""

    STANDIN = "standin"  # root: a Debian disk made from packages on the host, no VM
    INSTALL = "install"  # root: the OS installer from a DVD, driven by Packer
    SCRIPTS = "layer"  # scripts run on the parent's disk
    SEAL = "seal"  # the last scripts layer, then a leak scan and a flattened image

    @property
    def is_root(self) -> bool:
        return self in (LayerKind.STANDIN, LayerKind.INSTALL)

    @property
    def runs_vm(self) -> bool:
        return self is not LayerKind.STANDIN

    @property
    def standalone(self) -> bool:
        """Its image has no backing file: usable without its parents, and the family's output
        (with the manifest beside it)."""
        return self is LayerKind.SEAL

    @property
    def image_name(self) -> str:
        return SEALED_IMAGE if self.standalone else LAYER_IMAGE


class SourceKind(enum.StrEnum):
    """`sources.<name>.kind`: what a root layer is made from; it decides the root's kind."""

    ISO = "iso"  # an install DVD with its sha256
    STANDIN = "standin"  # Debian packages (the CI stand-in for OL8)

    @property
    def layer_kind(self) -> LayerKind:
        return LayerKind.INSTALL if self is SourceKind.ISO else LayerKind.STANDIN
