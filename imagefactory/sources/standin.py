"""Build the Debian 12 stand-in base image from Debian packages (no installer, no mounts).

mmdebstrap makes the root tree and runs standin/customize-rootfs.sh in it; then
standin/make-disk.sh turns the tree into a bootable qcow2 without mounting anything.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from imagefactory.errors import BuildError
from imagefactory.guest.credential import BuildCredential
from imagefactory.sources.model import StandinSource
from imagefactory.util.tools import child_env, require

STANDIN_DIR = Path(__file__).resolve().parents[2] / "standin"
CUSTOMIZE = STANDIN_DIR / "customize-rootfs.sh"
MAKE_DISK = STANDIN_DIR / "make-disk.sh"
TOOLS = ("mmdebstrap", "qemu-img")
HELPERS = ("mkfs.vfat", "mcopy", "syslinux", "sfdisk", "mkfs.ext4")

_DPKG_OPTS = [
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
]


def build_standin(
    source: StandinSource,
    out: Path,
    *,
    build_user: str,
    credential: BuildCredential,
    deb_cache: Path,
    log: Path,
) -> None:
    """Write a bootable stand-in qcow2 to `out`; its full log goes to `log`."""
    for tool in (*TOOLS, *HELPERS):
        require(tool)
    work = out.parent
    rootfs = work / "rootfs"
    deb_cache.mkdir(parents=True, exist_ok=True)
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--include=" + ",".join(source.packages),
        *(f"--dpkgopt={o}" for o in _DPKG_OPTS),
        '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
        f"--setup-hook=sync-in {deb_cache} /var/cache/apt/archives/",
        f"--customize-hook=sync-out /var/cache/apt/archives {deb_cache}",
        f"--customize-hook={CUSTOMIZE}",
        "--skip=download/empty",
        "--skip=essential/unlink",
        source.suite,
        str(rootfs),
    ]
    env = child_env(
        {
            "TMPDIR": str(work),
            "IF_BUILD_USER": build_user,
            "IF_BUILD_PUBKEY": credential.public_line,
            "IF_HOSTNAME": "standin",
        }
    )
    with log.open("a") as fh:
        for step in (argv, [str(MAKE_DISK), str(rootfs), str(out), str(source.disk_size_mib)]):
            fh.write(f"$ {' '.join(step)}\n")
            fh.flush()
            proc = subprocess.run(
                step,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
                stdin=subprocess.DEVNULL,
                check=False,
            )
            if proc.returncode != 0:
                tail = "\n".join(log.read_text().splitlines()[-15:])
                raise BuildError(
                    f"stand-in base build failed at {Path(step[0]).name} "
                    f"(exit {proc.returncode}); full log: {log}\n{tail}"
                )
    subprocess.run(["rm", "-rf", "--one-file-system", str(rootfs)], check=False)
