"""The install layer: render the kickstart and drive the OL8 installer through Packer."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from imagefactory.buildkey import BuildKey
from imagefactory.config import Config, IsoSource, LayerDef
from imagefactory.errors import BuildError

GRUB_HASH_ENV = "IMAGEFACTORY_GRUB_PASSWORD_HASH"
_GRUB_HASH = re.compile(r"^grub\.pbkdf2\.sha512\.\d+\.[0-9A-F]+\.[0-9A-F]+$")


def grub_password_hash() -> str:
    """The bootloader password hash from the build host's environment (never plaintext)."""
    value = os.environ.get(GRUB_HASH_ENV, "")
    if not _GRUB_HASH.match(value):
        raise BuildError(f"{GRUB_HASH_ENV} must hold a grub2-mkpasswd-pbkdf2 hash "
                         "(grub.pbkdf2.sha512.…); it is not set or not such a hash")
    return value


def render_kickstart(template: Path, out: Path, *, build_user: str, key: BuildKey,
                     grub_hash: str) -> None:
    values = {"@BUILD_USER@": build_user, "@BUILD_PUBKEY@": key.public_line,
              "@GRUB_PASSWORD_HASH@": grub_hash}
    text = template.read_text()
    for marker, value in values.items():
        text = text.replace(marker, value)
    left = sorted(set(re.findall(r"@[A-Z_]+@", text)))
    if left:
        raise BuildError(f"{template}: unknown placeholders {', '.join(left)}")
    out.write_text(text)
    out.chmod(0o644)


def packer_variables(cfg: Config, layer: LayerDef, src: IsoSource, iso: Path, http_dir: Path,
                     key: BuildKey) -> dict[str, Any]:
    kickstarts = [f for f in layer.files if f.suffix == ".ks"]
    if len(kickstarts) != 1:
        raise BuildError(f"layer {layer.name}: needs exactly one .ks file in files:")
    render_kickstart(kickstarts[0], http_dir / "ol8.ks", build_user=cfg.build.build_user,
                     key=key, grub_hash=grub_password_hash())
    return {"iso_path": str(iso), "iso_sha256": src.sha256, "http_dir": str(http_dir),
            "disk_size_mib": 20480}
