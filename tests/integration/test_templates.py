"""Packer templates, the kickstart and the shell scripts, checked with the real tools."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import hcl2
import pytest

from imagefactory.choices import OVMF_CODE, Firmware
from imagefactory.config import load_config
from imagefactory.guest.credential import generate_credential
from imagefactory.sources.install import render_kickstart
from imagefactory.sources.kickstart_check import check_kickstart
from tests.prereq import require_tool, require_tools

pytestmark = pytest.mark.integration
FIRMWARES = [f.value for f in Firmware]
REPO = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((REPO / "packer").glob("*.pkr.hcl"))
BUILD_TEMPLATES = [t for t in TEMPLATES if t.name != "plugins.pkr.hcl"]
SCRIPTS = sorted(p for d in ("packer/scripts", "standin") for p in (REPO / d).rglob("*.sh"))

# The variables imagefactory.engine.build renders for each template (kept in step by this test).
LAYER_VARS = {
    "parent_image": "/dev/null",
    "parent_sha256": "0" * 64,
    "output_dir": "OUT",
    "vm_name": "layer.qcow2",
    "accelerator": "tcg",
    "cpus": 2,
    "memory_mib": 1024,
    "disk_size_mib": 2048,
    "ssh_username": "packer",
    "ssh_private_key_file": "/dev/null",
    "ssh_timeout": "5m",
    "serial_log": "/dev/null",
    "files_dir": "/tmp",
    "files_target": "/var/tmp/x",
    "scripts": ["SCRIPT"],
    "env_vars": ["IF_LAYER=x"],
    "shutdown_command": "sudo systemctl poweroff",
    "reboot_inline": ["true"],
    "after_reboot_inline": ["true"],
    "after_reboot_pause": "0s",
    "uefi_firmware": "",  # BIOS; test_packer_validate_with_rendered_vars also runs UEFI
}
INSTALL_VARS = {
    "iso_path": "/dev/null",
    "iso_sha256": "0" * 64,
    "http_dir": "/tmp",
    "output_dir": "OUT",
    "vm_name": "layer.qcow2",
    "accelerator": "tcg",
    "cpus": 2,
    "memory_mib": 2048,
    "disk_size_mib": 21504,
    "ssh_username": "packer",
    "ssh_private_key_file": "/dev/null",
    "ssh_timeout": "45m",
    "serial_log": "/dev/null",
    "uefi_firmware": "",  # BIOS; test_packer_validate_with_rendered_vars also runs UEFI
}
RENDERED = {"layer.pkr.hcl": LAYER_VARS, "install-ol8.pkr.hcl": INSTALL_VARS}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_packer_fmt_is_clean(template: Path) -> None:
    require_tool("packer")
    proc = subprocess.run(
        ["packer", "fmt", "-check", "-diff", str(template)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("template", BUILD_TEMPLATES, ids=lambda p: p.name)
def test_template_declares_exactly_what_the_engine_renders(template: Path) -> None:
    """python-hcl2 reads the variable blocks; they match the engine's var file keys."""
    doc = hcl2.loads(template.read_text())
    declared = {name for block in doc["variable"] for name in block}
    declared = {n.strip('"') for n in declared}
    assert declared == set(RENDERED[template.name])


@pytest.mark.parametrize("template", BUILD_TEMPLATES, ids=lambda p: p.name)
def test_build_vm_has_a_virtio_rng(template: Path) -> None:
    """Every build VM gets a virtio-rng fed from the host's /dev/urandom."""
    text = template.read_text()
    assert '["-object", "rng-random,id=rng0,filename=/dev/urandom"]' in text
    assert '["-device", "virtio-rng-pci,rng=rng0"]' in text


def packer_validate(template: Path, variables: dict[str, object], tmp_path: Path) -> str:
    """Run `packer validate` with `variables` as a var file; return its output if it fails."""
    var_file = tmp_path / "vars.pkrvars.json"
    var_file.write_text(json.dumps(variables))
    proc = subprocess.run(
        ["packer", "validate", f"-var-file={var_file}", str(template)],
        capture_output=True,
        text=True,
        env={"CHECKPOINT_DISABLE": "1", "PATH": "/usr/bin:/bin"},
    )
    return "" if proc.returncode == 0 else proc.stdout + proc.stderr or "failed"


@pytest.mark.parametrize("firmware", FIRMWARES)
@pytest.mark.parametrize("template", BUILD_TEMPLATES, ids=lambda p: p.name)
def test_packer_validate_with_rendered_vars(template: Path, firmware: str, tmp_path: Path) -> None:
    """Each build template validates with the variables the engine renders, BIOS and UEFI
    (OVMF as QEMU's -bios; the install template's GRUB boot command)."""
    require_tools("packer", "ssh-keygen")
    script = tmp_path / "10-do-nothing.sh"
    script.write_text("#!/bin/bash\nset -euo pipefail\n")
    key = generate_credential(tmp_path / "k", "test")
    variables = {
        k: (str(tmp_path / "out") if v == "OUT" else v) for k, v in RENDERED[template.name].items()
    }
    variables["ssh_private_key_file"] = str(key.private)
    if firmware == "uefi":
        variables["uefi_firmware"] = str(OVMF_CODE)
    if "scripts" in variables:
        variables["scripts"] = [str(script)]
    assert packer_validate(template, variables, tmp_path) == ""


def test_packer_validate_rejects_a_missing_variable(tmp_path: Path) -> None:
    """validate is a real check: dropping one rendered variable fails it."""
    require_tool("packer")
    variables = {k: v for k, v in LAYER_VARS.items() if k != "accelerator"}
    variables["output_dir"] = str(tmp_path / "out")
    assert "accelerator" in packer_validate(REPO / "packer/layer.pkr.hcl", variables, tmp_path)


def render_real_kickstart(tmp_path: Path, firmware: str) -> tuple[Path, str]:
    """kickstart/ol8.ks rendered as the install layer does, with test values."""
    require_tool("ssh-keygen")
    key = generate_credential(tmp_path / "k", "test")
    out = tmp_path / "ol8.ks"
    render_kickstart(
        REPO / "kickstart/ol8.ks",
        out,
        build_user="packer",
        credential=key,
        grub_hash="grub.pbkdf2.sha512.10000.AB12.CD34",
        firmware=firmware,
    )
    return out, key.public_line


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_rendered_kickstart_passes_ksvalidator(tmp_path: Path, firmware: str) -> None:
    ksvalidator = require_tool("ksvalidator")
    out, public_line = render_real_kickstart(tmp_path, firmware)
    text = out.read_text()
    assert public_line in text
    assert re.findall(r"@[A-Z_]+@", text) == []
    efi = [ln for ln in text.splitlines() if ln.startswith("part /boot/efi ")]
    assert len(efi) == (1 if firmware == "uefi" else 0)
    proc = subprocess.run([ksvalidator, "-v", "RHEL8", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_rendered_kickstart_passes_own_checks(tmp_path: Path, firmware: str) -> None:
    """The factory's own rules (sources.kickstart_check) hold for the real kickstart."""
    out, _ = render_real_kickstart(tmp_path, firmware)
    assert check_kickstart(out.read_text(), "ol8.ks", uefi=firmware == "uefi") == []


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_shellcheck_clean(script: Path) -> None:
    require_tool("shellcheck")
    proc = subprocess.run(["shellcheck", "-x", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_every_layer_script_follows_house_rules() -> None:
    """Layer scripts: NN-verb-noun.sh, executable, bash, set -euo pipefail, names unique."""
    problems = []
    for cfg_name in ("factory.yaml", "standin.yaml"):
        cfg = load_config(REPO / cfg_name)
        for layer in cfg.layers.values():
            for script in layer.scripts:
                text = script.read_text()
                if not re.fullmatch(r"\d\d-[a-z0-9]+(-[a-z0-9]+)+\.sh", script.name):
                    problems.append(f"{script.name}: not NN-verb-noun.sh")
                if not script.stat().st_mode & 0o111:
                    problems.append(f"{script.name}: not executable")
                if not text.startswith("#!/bin/bash\n") or "set -euo pipefail" not in text:
                    problems.append(f"{script.name}: needs #!/bin/bash and set -euo pipefail")
            names = [s.name for s in layer.scripts]
            if len(names) != len(set(names)):
                problems.append(f"{cfg_name}: layer {layer.name} repeats a script name")
    assert problems == []
