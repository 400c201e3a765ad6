"""The firmware belongs to the image chain: the root layer's IF_FIRMWARE decides how every later
layer, the verify boot and the hypervisor's VM boot. No VM here (tests/integration/
test_firmware_boot.py starts the firmware for real)."""

from __future__ import annotations

import json
import shutil
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from imagefactory import choices, verify
from imagefactory.choices import LAYER_IMAGE
from imagefactory.config import Config, load_config
from imagefactory.engine import recipes
from imagefactory.engine.context import Artifacts, BuildContext, LayerBuild
from imagefactory.engine.output import write_manifest
from imagefactory.engine.plan import Plan, Reuse, make_plan
from imagefactory.errors import BuildError, FactoryError
from imagefactory.guest import vm
from imagefactory.guest.credential import BuildCredential
from imagefactory.util.progress import Timer
from tests.standinkit import script_layer, standin_config, write_standin

REPO = Path(__file__).resolve().parents[2]
KEY = BuildCredential(
    Path("/nonexistent"),
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f test",
)

DVD = {"kind": "iso", "url": "file:///nonexistent.iso", "sha256": "0" * 64}


def write_config(root: Path, firmware: str) -> Config:
    """Family ol8 from an installed root layer with IF_FIRMWARE `firmware`, family standin
    from the stand-in root; both then layers mid and seal."""
    (root / "s" / "data").mkdir(parents=True, exist_ok=True)
    (root / "install.pkr.hcl").write_text("# template\n")
    (root / "ks").mkdir(exist_ok=True)
    shutil.copy(REPO / "kickstart" / "ol8.ks", root / "ks" / "ol8.ks")
    install = {
        "source": "dvd",
        "template": "install.pkr.hcl",
        "files": ["ks/ol8.ks"],
        "variables": {"IF_FIRMWARE": firmware},
    }
    config = standin_config(
        {
            "install": install,
            "mid": script_layer("mid", files=["s/data"]),
            "seal": script_layer("seal", seal=True),
        },
        {
            "ol8": {"os": "ol8", "layers": ["install", "mid", "seal"]},
            "standin": {"os": "debian12", "layers": ["base", "mid", "seal"]},
        },
        sources={"dvd": DVD},
    )
    return load_config(write_standin(root, config))


@pytest.fixture(autouse=True)
def no_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Tool versions and qemu-img answers without the tools; a stand-in OVMF image."""
    monkeypatch.setattr(recipes.tools, "versions", lambda names: dict.fromkeys(names, "1.0"))
    monkeypatch.setattr(recipes.seal, "image_info", lambda path: {"virtual-size": 2 << 30})
    monkeypatch.setattr(vm, "require", lambda tool: f"/usr/bin/{tool}")
    ovmf = tmp_path / "OVMF_CODE.fd"
    ovmf.write_bytes(b"firmware")
    monkeypatch.setattr(choices, "OVMF_CODE", ovmf)
    return ovmf


def plan_of(cfg: Config, family: str, art: Artifacts) -> Plan:
    return make_plan(cfg, cfg.family(family), Reuse(art.cache), KEY)


def commit_all(art: Artifacts, p: Plan) -> None:
    """Put every layer of the plan into the cache, as a build would have."""
    for step in p.steps:
        built = art.root / f"built-{step.short}"
        built.mkdir(parents=True)
        (built / LAYER_IMAGE).write_bytes(b"qcow2")
        art.cache.commit(
            step.key,
            built,
            step.inputs,
            {
                "image": LAYER_IMAGE,
                "sha256": "0" * 64,
                "parent_sha256": "0" * 64 if step.index else None,
                "built_at": "then",
                "build_seconds": 1.0,
            },
        )
        art.cache.set_ref(p.family.name, step.layer.name, step.key)


def layer_variables(cfg: Config, family: str, art: Artifacts) -> dict[str, Any]:
    """What the engine renders for layer.pkr.hcl for the family's second layer."""
    p = plan_of(cfg, family, art)
    commit_all(art, p)
    tmp = art.root / "tmp"
    tmp.mkdir()
    ctx = BuildContext(cfg, art, p.family, p.firmware, KEY, "now")
    step = p.steps[1]
    run = LayerBuild(ctx, step.layer.name, step.key, p.steps[0].key, "tcg", tmp, tmp / "l", Timer())
    packer_recipe = p.steps[1].recipe
    assert isinstance(packer_recipe, recipes.PackerRecipe)
    return packer_recipe.packer_variables(run)


def firmware_of(cfg: Config, family: str) -> str:
    """How a family boots: as its root layer's recipe says (what Plan.firmware reads)."""
    return recipes.recipe_of(cfg, cfg.layers[cfg.family(family).layers[0]]).firmware


def test_the_root_layer_decides_the_firmware(tmp_path: Path) -> None:
    assert firmware_of(write_config(tmp_path, "uefi"), "ol8") == "uefi"
    assert firmware_of(write_config(tmp_path, "bios"), "ol8") == "bios"
    assert firmware_of(write_config(tmp_path, "uefi"), "standin") == "bios"
    shipped = load_config(REPO / "factory.yaml")
    assert {firmware_of(shipped, f) for f in shipped.families} == {"bios"}
    standin = load_config(REPO / "standin.yaml")
    assert {firmware_of(standin, f) for f in standin.families} == {"bios"}


def test_layers_of_a_uefi_family_boot_ovmf(tmp_path: Path, no_tools: Path) -> None:
    cfg = write_config(tmp_path, "uefi")
    variables = layer_variables(cfg, "ol8", Artifacts(tmp_path / "artifacts"))
    assert variables["uefi_firmware"] == str(no_tools)


@pytest.mark.parametrize(("firmware", "family"), [("bios", "ol8"), ("uefi", "standin")])
def test_layers_of_a_bios_family_boot_seabios(tmp_path: Path, firmware: str, family: str) -> None:
    cfg = write_config(tmp_path, firmware)
    variables = layer_variables(cfg, family, Artifacts(tmp_path / "artifacts"))
    assert variables["uefi_firmware"] == ""


def test_a_uefi_layer_without_ovmf_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(choices, "OVMF_CODE", tmp_path / "absent.fd")
    cfg = write_config(tmp_path, "uefi")
    with pytest.raises(BuildError, match=r"absent\.fd not found.*apt-get install ovmf"):
        layer_variables(cfg, "ol8", Artifacts(tmp_path / "artifacts"))


@pytest.mark.parametrize(
    ("firmware", "family", "recorded"),
    [("uefi", "ol8", "uefi"), ("bios", "ol8", "bios"), ("uefi", "standin", "bios")],
)
def test_the_manifest_records_the_firmware(
    tmp_path: Path, firmware: str, family: str, recorded: str
) -> None:
    cfg = write_config(tmp_path, firmware)
    art = Artifacts(tmp_path / "artifacts")
    p = plan_of(cfg, family, art)
    commit_all(art, p)
    entry = tmp_path / "entry"
    entry.mkdir()
    (entry / "image.qcow2").write_bytes(b"qcow2")
    facts = {
        "image": "image.qcow2",
        "sha256": "1" * 64,
        "size": 5,
        "built_at": "now",
        "build_seconds": 2.0,
        "accelerator": "tcg",
    }
    ctx = BuildContext(cfg, art, p.family, p.firmware, KEY, "start")
    run = LayerBuild(ctx, "seal", p.final.key, None, "tcg", tmp_path, tmp_path / "log", Timer())
    write_manifest(run, p, facts)
    assert json.loads((entry / "manifest.json").read_text())["firmware"] == recorded


def test_changing_the_firmware_makes_every_layer_stale(tmp_path: Path) -> None:
    """The firmware reaches the later layers' keys only through the parent chain."""
    art = Artifacts(tmp_path / "artifacts")
    bios = plan_of(write_config(tmp_path, "bios"), "ol8", art)
    commit_all(art, bios)
    assert plan_of(write_config(tmp_path, "bios"), "ol8", art).todo == ()
    uefi = plan_of(write_config(tmp_path, "uefi"), "ol8", art)
    assert [s.layer.name for s in uefi.todo] == ["install", "mid", "seal"]
    assert uefi.steps[0].reasons == ("variables: IF_FIRMWARE 'bios' -> 'uefi'",)
    assert uefi.steps[1].reasons == ("parent layer install changed",)
    assert uefi.steps[2].reasons == ("parent layer mid changed",)
    for old, new in zip(bios.steps[1:], uefi.steps[1:], strict=True):
        assert {k: v for k, v in old.inputs.items() if k != "parent"} == {
            k: v for k, v in new.inputs.items() if k != "parent"
        }


def test_verify_boot_argv_follows_the_firmware(tmp_path: Path, no_tools: Path) -> None:
    def argv(firmware: str) -> list[str]:
        return vm.qemu_argv(
            tmp_path / "i.qcow2",
            accelerator="tcg",
            port=2222,
            login_pubkey=KEY.public_line,
            serial_log=tmp_path / "s.log",
            firmware=firmware,
        )

    uefi = argv("uefi")
    assert uefi[uefi.index("-bios") + 1] == str(no_tools)
    assert "-bios" not in argv("bios")
    assert [a for a in uefi if a != "-bios" and a != str(no_tools)] == argv("bios")
    with pytest.raises(FactoryError, match="unknown firmware 'efi'"):
        argv("efi")


class Booted(Exception):
    """Stops verify_image at the boot, with what it asked vm.boot for."""


def firmware_verify_boots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, manifest: Path | None
) -> str:
    def fake_boot(image: Path, **kwargs: Any) -> AbstractContextManager[vm.BootedVM]:
        raise Booted(kwargs["firmware"])

    monkeypatch.setattr(verify.vm, "boot", fake_boot)
    monkeypatch.setattr(verify, "generate_credential", lambda path, comment: KEY)
    with pytest.raises(Booted) as info:
        verify.verify_image(
            tmp_path / "i.qcow2",
            manifest,
            [tmp_path / "spec.py"],
            tmp_path / "reports",
            accelerator="tcg",
        )
    return str(info.value)


@pytest.mark.parametrize("firmware", ["uefi", "bios"])
def test_verify_boots_with_the_manifest_firmware(
    tmp_path: Path, firmware: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"schema": 1, "firmware": firmware}))
    assert firmware_verify_boots(tmp_path, monkeypatch, manifest) == firmware


def test_verify_boots_bios_without_a_recorded_firmware(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No manifest, or one from before the firmware was recorded (all layers booted BIOS)."""
    assert firmware_verify_boots(tmp_path, monkeypatch, None) == "bios"
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"schema": 1}))
    assert firmware_verify_boots(tmp_path, monkeypatch, manifest) == "bios"


def answers_of_systemd(monkeypatch: pytest.MonkeyPatch, states: list[str | None]) -> list[str]:
    """Feeds `systemctl is-system-running` answers (None: SSH refused) to vm.ssh_run."""
    asked: list[str] = []

    def fake_ssh_run(port: int, user: str, key: Path, command: str, timeout: float = 10.0):
        asked.append(command)
        state = states.pop(0) if states else "starting"
        return None if state is None else (0 if state == "running" else 1, state + "\n")

    monkeypatch.setattr(vm, "ssh_run", fake_ssh_run)
    monkeypatch.setattr(vm.time, "sleep", lambda s: None)
    return asked


def test_startup_is_awaited_until_systemd_has_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    """Specs run once the boot's jobs are done, not when SSH first answers."""
    asked = answers_of_systemd(monkeypatch, [None, "starting", "initializing", "degraded"])
    booted = vm.BootedVM(2222, "ops", Path("/k"), Path("/serial.log"))
    assert vm.wait_for_startup(booted) == "degraded"
    assert asked == ["systemctl is-system-running"] * 4


def test_startup_still_running_after_the_timeout_is_returned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A boot that never finishes ends the wait with the state it was in."""
    answers_of_systemd(monkeypatch, [])
    booted = vm.BootedVM(2222, "ops", Path("/k"), Path("/serial.log"))
    assert vm.wait_for_startup(booted, timeout_s=0.05) == "starting"
