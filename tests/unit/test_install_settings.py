"""Install layer settings (IF_FIRMWARE, IF_DISK_SIZE_MIB): validated with the config, then
turned into the Packer variables; the kickstart is checked before Packer ever runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from imagefactory import choices
from imagefactory.config import Config, IsoSource, load_config
from imagefactory.engine.recipes import IsoInstall, recipe_of
from imagefactory.errors import BuildError, ConfigError
from imagefactory.guest.credential import BuildCredential
from imagefactory.sources import install

REPO = Path(__file__).resolve().parents[2]
KEY = BuildCredential(Path("/nonexistent"), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA test")
HASH = "grub.pbkdf2.sha512.10000.AB12.CD34"

CONFIG = """
version: 1
sources:
  dvd: {kind: iso, url: "file:///nonexistent.iso", sha256: "%s"}
layers:
  install:
    source: dvd
    template: install.pkr.hcl
    files: [ks/ol8.ks]
    variables: {VARIABLES}
  seal: {scripts: [s/10-do-seal.sh], seal: true}
families:
  fam: {layers: [install, seal]}
""".replace("%s", "0" * 64)


def write(tmp_path: Path, variables: str = "{}", kickstart: str | None = None) -> Path:
    (tmp_path / "s").mkdir(exist_ok=True)
    (tmp_path / "s" / "10-do-seal.sh").write_text("#!/bin/bash\n")
    (tmp_path / "install.pkr.hcl").write_text("# template\n")
    (tmp_path / "ks").mkdir(exist_ok=True)
    ks = tmp_path / "ks" / "ol8.ks"
    if kickstart is None:
        shutil.copy(REPO / "kickstart" / "ol8.ks", ks)
    else:
        ks.write_text(kickstart)
    path = tmp_path / "factory.yaml"
    path.write_text(CONFIG.replace("{VARIABLES}", variables))
    return path


def problems(path: Path) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [(p.path, p.message, p.hint) for p in info.value.problems]


def test_defaults_and_the_shipped_config() -> None:
    assert install.install_settings({}) == install.InstallSettings("bios", 21504)
    layer = load_config(REPO / "factory.yaml").layers["install"]
    assert install.install_settings(layer.variables) == install.InstallSettings("bios", 21504)


def test_settings_are_read(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "{IF_FIRMWARE: uefi, IF_DISK_SIZE_MIB: 30720}"))
    settings = install.install_settings(cfg.layers["install"].variables)
    assert settings == install.InstallSettings("uefi", 30720)


def test_unknown_firmware_and_setting_and_a_non_number(tmp_path: Path) -> None:
    path = write(tmp_path, '{IF_FIRMWARE: efi, IF_DISK_SIZE_MIB: "20G", IF_DISK: 1}')
    assert problems(path) == [
        (
            ".layers.install.variables.IF_DISK",
            "not a setting of an install layer",
            "an install layer takes IF_FIRMWARE and IF_DISK_SIZE_MIB",
        ),
        (".layers.install.variables.IF_FIRMWARE", "'efi' is not a firmware", "one of: bios, uefi"),
        (
            ".layers.install.variables.IF_DISK_SIZE_MIB",
            "'20G' is not a whole number of MiB",
            "e.g. 21504",
        ),
    ]


@pytest.mark.parametrize(("firmware", "need"), [("bios", 20486), ("uefi", 21086)])
def test_disk_smaller_than_the_kickstart_layout_names_file_and_field(
    tmp_path: Path, firmware: str, need: int
) -> None:
    path = write(tmp_path, f"{{IF_FIRMWARE: {firmware}, IF_DISK_SIZE_MIB: {need - 1}}}")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.file == str(path)
    assert problem.path == ".layers.install.variables.IF_DISK_SIZE_MIB"
    assert problem.message == (
        f"{need - 1} MiB is too small: the partitions and logical volumes of ks/ol8.ks "
        f"need at least {need} MiB ({firmware})"
    )
    assert problem.hint == "IF_DISK_SIZE_MIB: 21504"
    load_config(write(tmp_path, f"{{IF_FIRMWARE: {firmware}, IF_DISK_SIZE_MIB: {need}}}"))


def test_the_default_disk_is_checked_too(tmp_path: Path) -> None:
    big = (REPO / "kickstart" / "ol8.ks").read_text().replace("--size=8192", "--size=81920")
    ((path, message, _),) = problems(write(tmp_path, kickstart=big))
    assert path == ".layers.install.variables.IF_DISK_SIZE_MIB"
    assert message.startswith("21504 MiB (the default) is too small")


def test_an_install_layer_needs_one_kickstart(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace("files: [ks/ol8.ks]", "files: []"))
    assert problems(path) == [
        (
            ".layers.install.files",
            "an install layer needs exactly one .ks file",
            "e.g. files: [kickstart/ol8.ks]",
        )
    ]


def run_install(cfg: Config, http: Path) -> dict[str, object]:
    src = cfg.sources["dvd"]
    assert isinstance(src, IsoSource)
    http.mkdir(exist_ok=True)
    recipe = recipe_of(cfg, cfg.layers["install"])
    assert isinstance(recipe, IsoInstall)
    return recipe.install_variables(http / "dvd.iso", http, KEY)


def packer_vars(tmp_path: Path, variables: str) -> dict[str, object]:
    return run_install(load_config(write(tmp_path, variables)), tmp_path / "http")


def test_packer_variables_for_bios_and_uefi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(install.GRUB_HASH_ENV, HASH)
    bios = packer_vars(tmp_path, "{}")
    assert bios["disk_size_mib"] == 21504 and bios["uefi_firmware"] == ""
    assert "\n# UEFI only: part /boot/efi " in (tmp_path / "http" / "ol8.ks").read_text()
    ovmf = tmp_path / "OVMF_CODE.fd"
    ovmf.write_bytes(b"firmware")
    monkeypatch.setattr(choices, "OVMF_CODE", ovmf)
    uefi = packer_vars(tmp_path, "{IF_FIRMWARE: uefi, IF_DISK_SIZE_MIB: 25600}")
    assert uefi["disk_size_mib"] == 25600 and uefi["uefi_firmware"] == str(ovmf)
    assert "\npart /boot/efi --fstype=efi " in (tmp_path / "http" / "ol8.ks").read_text()


def test_uefi_without_ovmf_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(install.GRUB_HASH_ENV, HASH)
    monkeypatch.setattr(choices, "OVMF_CODE", tmp_path / "absent.fd")
    with pytest.raises(BuildError, match=r"apt-get install ovmf"):
        packer_vars(tmp_path, "{IF_FIRMWARE: uefi}")


def test_a_bad_kickstart_stops_the_build_before_packer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every problem, named by the kickstart's path in the config and its line."""
    monkeypatch.setenv(install.GRUB_HASH_ENV, HASH)
    bad = (
        (REPO / "kickstart" / "ol8.ks")
        .read_text()
        .replace("firewall --enabled --service=ssh", "firewall --disabled")
        .replace("rootpw --lock", "rootpw hunter2")
    )
    cfg = load_config(write(tmp_path, kickstart=bad))
    with pytest.raises(ConfigError) as info:
        run_install(cfg, tmp_path / "http")
    got = [str(p) for p in info.value.problems]
    assert len(got) == 2
    assert all(p.startswith("ks/ol8.ks: line ") for p in got)
    assert "firewall is disabled" in got[0] + got[1] and "plain-text password" in got[0] + got[1]
    assert list((tmp_path / "http").iterdir()) == []
