"""A recipe per kind of layer: what goes into its key and how it is built, from one place.

Every recipe hashes the inputs it then hands to its builder: a scripts layer's template,
scripts, files, variables and family are both in its key and in what Packer receives, so the
two cannot drift apart. The common part (name, variables, epoch, repository state, parent or
build credential, family) is hashed the same way for every kind.
"""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from imagefactory.choices import LAYER_IMAGE, Firmware, LayerKind
from imagefactory.config import Config, Family, IsoSource, LayerDef, StandinSource
from imagefactory.engine.context import BuildContext, LayerBuild
from imagefactory.engine.keys import Inputs, file_entry
from imagefactory.errors import BuildError
from imagefactory.guest import packer, seal
from imagefactory.guest.credential import BuildCredential
from imagefactory.sources import install, iso, standin
from imagefactory.sources.repostate import RepoStates
from imagefactory.util import progress, tools
from imagefactory.util.paths import REPO
from imagefactory.util.sourcetree import copy_sources

LAYER_TEMPLATE = REPO / "packer" / "layer.pkr.hcl"
PACKER_TOOLS = ("packer", "qemu-img", "qemu-system-x86_64")
# Staged into a layer with `reboot: true`: records /etc, then compares after the second run.
IDEMPOTENCE_CHECK = REPO / "packer" / "files" / "layer" / "check-idempotence.sh"
BOOT_ID = "/proc/sys/kernel/random/boot_id"  # new at every boot
REBOOT_SOON = "systemd-run --on-active=2 --timer-property=AccuracySec=100ms systemctl reboot"

# A build VM that never answers SSH is booted once more before the layer fails (see
# guest/packer.py: PackerRun.boot_attempts).
BOOT_ATTEMPTS = 2


class LayerRecipe(ABC):
    """One layer of the config with the behaviour of its kind."""

    def __init__(self, cfg: Config, layer: LayerDef) -> None:
        self.cfg = cfg
        self.layer = layer

    @property
    def kind(self) -> LayerKind:
        return self.layer.kind

    @property
    def firmware(self) -> Firmware:
        """How a family whose root is this layer boots (only root recipes decide)."""
        return Firmware.BIOS

    def inputs(
        self,
        family: Family,
        parent: str | None,
        credential: BuildCredential,
        repos: RepoStates | None = None,
    ) -> Inputs:
        """The canonical description of the layer's inputs; its sha256 is the layer key.

        A layer with `epoch_from` reads its repositories' state here (network, read-only).
        The field names are part of every key: renaming one rebuilds every cache.
        """
        layer = self.layer
        doc: Inputs = {"name": layer.name, "variables": dict(layer.variables)}
        doc |= {"epoch": layer.epoch, "kind": self.kind.value}
        if layer.epoch_from_repomd:
            repos = repos or RepoStates()
            where = f"{self.cfg.path}: .layers.{layer.name}.epoch_from.repomd"
            doc["repo_state"] = [
                repos.of(url, f"{where}[{i}]").to_input()
                for i, url in enumerate(layer.epoch_from_repomd)
            ]
        doc |= self.own_inputs()
        if parent is None:  # "build_key": the credential's stored field name
            doc |= {"build_user": self.cfg.build.build_user, "build_key": credential.fingerprint}
        else:
            doc["parent"] = parent
        if layer.per_family:
            doc["family"] = family.name
        return doc

    @abstractmethod
    def own_inputs(self) -> Inputs:
        """What this kind adds to the key."""

    def prepare(self, ctx: BuildContext) -> None:  # noqa: B027 (most kinds need nothing)
        """Fetch what the layer needs before any VM of the build starts (default: nothing)."""

    @abstractmethod
    def build(self, run: LayerBuild) -> str:
        """Write the layer's image into run.entry; return its file name."""


class StandinRoot(LayerRecipe):
    """The Debian stand-in root: a disk made from Debian packages on the host, no VM."""

    def __init__(self, cfg: Config, layer: LayerDef, source: StandinSource) -> None:
        super().__init__(cfg, layer)
        self.source = source

    def own_inputs(self) -> Inputs:
        src = self.source
        return {
            "source": {
                "suite": src.suite,
                "packages": list(src.packages),
                "epoch": src.epoch,
                "disk_size_mib": src.disk_size_mib,
            },
            "source_files": [file_entry(p, REPO) for p in (standin.CUSTOMIZE, standin.MAKE_DISK)],
            "tools": tools.versions(standin.TOOLS),
        }

    def build(self, run: LayerBuild) -> str:
        standin.build_standin(
            self.source,
            run.entry / LAYER_IMAGE,
            build_user=self.cfg.build.build_user,
            credential=run.ctx.credential,
            deb_cache=run.ctx.artifacts.debs,
            log=run.log,
        )
        return LAYER_IMAGE


class PackerRecipe(LayerRecipe):
    """A layer built by one Packer run of its template."""

    @property
    def template(self) -> Path:
        return self.layer.template or LAYER_TEMPLATE

    def own_inputs(self) -> Inputs:
        rel = self.cfg.root
        return {
            "template": file_entry(self.template, REPO),
            "scripts": [file_entry(p, rel) for p in self.layer.scripts],
            "files": [file_entry(p, rel) for p in self.layer.files],
            "tools": tools.versions(PACKER_TOOLS),
        }

    @abstractmethod
    def packer_variables(self, run: LayerBuild) -> dict[str, Any]:
        """The variables this kind's template takes beyond the common ones."""

    @abstractmethod
    def finish(self, run: LayerBuild, disk: Path) -> str:
        """Turn Packer's output disk into the layer's image in run.entry; its file name."""

    def build(self, run: LayerBuild) -> str:
        build = self.cfg.build
        variables: dict[str, Any] = {
            "output_dir": str(run.tmp / "out"),
            "vm_name": LAYER_IMAGE,
            "accelerator": run.accelerator,
            "cpus": build.cpus,
            "memory_mib": build.memory_mib,
            "ssh_username": build.build_user,
            "ssh_private_key_file": str(run.ctx.credential.private),
            "ssh_timeout": build.ssh_timeout,
            "serial_log": str(run.serial_log),
            **self.packer_variables(run),
        }
        packer.build(
            packer.PackerRun(
                self.template,
                variables,
                run.tmp / "packer",
                run.log,
                run.serial_log,
                build.ssh_timeout,
                boot_attempts=BOOT_ATTEMPTS,
            ),
            on_step=progress.detail,
            on_retry=progress.warn,
        )
        return self.finish(run, run.tmp / "out" / LAYER_IMAGE)


class IsoInstall(PackerRecipe):
    """The OS installer from a verified DVD, answering from the rendered kickstart."""

    def __init__(self, cfg: Config, layer: LayerDef, source: IsoSource) -> None:
        super().__init__(cfg, layer)
        self.source = source

    @property
    def firmware(self) -> Firmware:
        return install.install_settings(self.layer.variables).firmware

    def own_inputs(self) -> Inputs:
        return super().own_inputs() | {
            "source": {"url": self.source.url, "sha256": self.source.sha256}
        }

    def _fetch(self, ctx: BuildContext) -> Path:
        return iso.fetch_iso(self.source, ctx.artifacts.sources, str(self.cfg.path))

    def prepare(self, ctx: BuildContext) -> None:
        with progress.step(f"source {self.source.name}: {self.source.url}"):
            self._fetch(ctx)

    def packer_variables(self, run: LayerBuild) -> dict[str, Any]:
        http_dir = run.tmp / "http"
        http_dir.mkdir()
        return self.install_variables(self._fetch(run.ctx), http_dir, run.ctx.credential)

    def install_variables(
        self, iso_path: Path, http_dir: Path, credential: BuildCredential
    ) -> dict[str, Any]:
        """The install template's variables; the kickstart is rendered into `http_dir` and
        checked (every problem at once) before Packer starts."""
        kickstart = install.kickstart_of(self.layer.files)
        if kickstart is None:
            raise BuildError(f"layer {self.layer.name}: needs exactly one .ks file in files:")
        settings = install.install_settings(self.layer.variables)
        firmware_file = settings.firmware.ovmf()
        install.render_kickstart(
            kickstart,
            http_dir / "ol8.ks",
            build_user=self.cfg.build.build_user,
            credential=credential,
            grub_hash=install.grub_password_hash(),
            firmware=settings.firmware,
            shown=self.cfg.relpath(kickstart),
        )
        return {
            "iso_path": str(iso_path),
            "iso_sha256": self.source.sha256,
            "http_dir": str(http_dir),
            "disk_size_mib": settings.disk_size_mib,
            "uefi_firmware": firmware_file,
        }

    def finish(self, run: LayerBuild, disk: Path) -> str:
        os.rename(disk, run.entry / LAYER_IMAGE)
        return LAYER_IMAGE


class ScriptsRecipe(PackerRecipe):
    """Scripts run on the parent's disk; the result is an overlay on the parent's image."""

    def own_inputs(self) -> Inputs:
        doc = super().own_inputs()
        if self.layer.reboot:
            doc["reboot"] = file_entry(IDEMPOTENCE_CHECK, REPO)
        return doc

    def environment(self, family: str) -> dict[str, str]:
        """What the scripts see: the layer's variables (hashed) and where its files are."""
        env = {
            "IF_LAYER": self.layer.name,
            "IF_FILES": packer.FILES_TARGET,
            **{k: str(v) for k, v in self.layer.variables.items()},
        }
        if self.layer.per_family:  # then the family is an input too
            env["IF_FAMILY"] = family
        return env

    def shutdown_command(self) -> str:
        return "sudo systemctl poweroff"

    def packer_variables(self, run: LayerBuild) -> dict[str, Any]:
        parent = run.parent_image
        files = run.tmp / "files"
        files.mkdir()
        (files / "README").write_text(f"Inputs of layer {self.layer.name} ({run.key}).\n")
        for path in self.layer.files:  # the same files the key hashes, never ignored ones
            if path.is_dir():
                copy_sources(path, files / path.name)
            else:
                shutil.copy2(path, files / path.name)
        env = self.environment(run.ctx.family.name)
        return {
            "parent_image": str(parent),
            "parent_sha256": run.ctx.artifacts.cache.facts(run.parent)["sha256"],
            "disk_size_mib": int(seal.image_info(parent)["virtual-size"]) // (1024 * 1024),
            "files_dir": str(files),
            "files_target": packer.FILES_TARGET,
            "scripts": [str(p) for p in self.layer.scripts],
            "env_vars": [f"{k}={v}" for k, v in sorted(env.items())],
            "shutdown_command": self.shutdown_command(),
            # The family's root layer decides: a UEFI-installed disk boots only with OVMF.
            "uefi_firmware": run.ctx.firmware.ovmf(),
            **self._reboot_variables(files),
        }

    def _reboot_variables(self, files: Path) -> dict[str, Any]:
        """A layer with `reboot: true` records /etc, reboots, runs its scripts a second time
        and fails if that second run changed anything; the template runs these commands."""
        if not self.layer.reboot:
            return {
                "reboot_inline": ["true"],
                "after_reboot_inline": ["true"],
                "after_reboot_pause": "0s",
            }
        staged = files / ".layer"
        (staged / "scripts").mkdir(parents=True)
        shutil.copy2(IDEMPOTENCE_CHECK, staged / IDEMPOTENCE_CHECK.name)
        for script in self.layer.scripts:
            shutil.copy2(script, staged / "scripts" / script.name)
        guest = f"{packer.FILES_TARGET}/.layer"
        check = f"/bin/bash {guest}/{IDEMPOTENCE_CHECK.name}"
        state = f"{guest}/etc.state"
        rerun = [
            f"echo 'second run after the reboot: {s.name}' && /bin/bash {guest}/scripts/{s.name}"
            for s in self.layer.scripts
        ]
        return {
            # The template runs inline commands with plain bash: no -e unless we say so.
            # The reboot is started from a transient timer, not by this command: the command
            # returns and Packer ends the provisioner at once, instead of waiting (35-220 s
            # seen) to notice that the SSH connection died under it.
            "reboot_inline": [
                "set -euo pipefail",
                f"{check} record {state}",
                f"cat {BOOT_ID} > {guest}/boot_id",
                REBOOT_SOON,
            ],
            "after_reboot_inline": [
                "set -euo pipefail",
                # Proof that this is the rebooted system, never the old one still answering.
                f'test "$(cat {BOOT_ID})" != "$(cat {guest}/boot_id)" '
                "|| { echo 'still the system before the reboot' >&2; exit 1; }",
                *rerun,
                f"{check} compare {state}",
                f"rm -rf {guest}",
            ],
            # The reboot starts 2 s after the command returns; its first steps stop sshd.
            "after_reboot_pause": "8s",
        }

    def finish(self, run: LayerBuild, disk: Path) -> str:
        # Relative backing path: the cache stays valid if artifacts/ is moved.
        rel = Path("..") / run.parent / run.parent_image.name
        tools.run(["qemu-img", "rebase", "-u", "-F", "qcow2", "-b", str(rel), str(disk)])
        os.rename(disk, run.entry / LAYER_IMAGE)
        return LAYER_IMAGE


class SealRecipe(ScriptsRecipe):
    """The last scripts layer: the guest removes the build user, the host scans and flattens."""

    def own_inputs(self) -> Inputs:
        return super().own_inputs() | {"compression": self.cfg.build.compression.value}

    def shutdown_command(self) -> str:
        return seal.shutdown_command(packer.FILES_TARGET, self.cfg.build.build_user)

    def finish(self, run: LayerBuild, disk: Path) -> str:
        image = run.entry / self.kind.image_name
        seal.seal_image(
            disk,
            image,
            credential=run.ctx.credential,
            compression=self.cfg.build.compression,
            scratch=run.tmp,
        )
        return image.name


def recipe_of(cfg: Config, layer: LayerDef) -> LayerRecipe:
    """The recipe of a validated layer; a root recipe gets its source, typed, here once."""
    source = cfg.sources.get(layer.source or "")
    match layer.kind:
        case LayerKind.STANDIN if isinstance(source, StandinSource):
            return StandinRoot(cfg, layer, source)
        case LayerKind.INSTALL if isinstance(source, IsoSource):
            return IsoInstall(cfg, layer, source)
        case LayerKind.SCRIPTS:
            return ScriptsRecipe(cfg, layer)
        case LayerKind.SEAL:
            return SealRecipe(cfg, layer)
    raise ValueError(f"layer {layer.name}: kind {layer.kind} does not match its source")
