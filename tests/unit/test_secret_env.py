"""The store's key (and the GRUB hash) stay in the factory's own process: Packer, the verify
specs and every other program it starts get an environment without them."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from imagefactory import verify
from imagefactory.guest import packer, vm
from imagefactory.sources.install import GRUB_HASH_ENV
from imagefactory.store import settings
from imagefactory.util import tools

SECRETS = {
    "IMAGEFACTORY_S3_ACCESS_KEY": "AKIDLEAKCANARY",
    "IMAGEFACTORY_S3_SECRET_KEY": "secret-leak-canary",
    "IMAGEFACTORY_S3_CREDENTIALS": "/etc/imagefactory/s3.ini",
    "IMAGEFACTORY_GRUB_PASSWORD_HASH": "grub.pbkdf2.sha512.10000.LEAK",
}
ORDINARY = ("IFT_ORDINARY_VARIABLE", "still-here")


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The factory's environment holds the store's key, the GRUB hash and an ordinary variable."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(*ORDINARY)


def leaked(text: str) -> list[str]:
    """Which secret names or values appear in a child's printed environment."""
    return sorted(n for n, v in SECRETS.items() if n in text or v in text)


def test_secret_names_are_the_ones_the_factory_reads() -> None:
    """SECRET_ENV names the variables the store settings and the install layer read."""
    read = {settings.ENV_ACCESS, settings.ENV_SECRET, settings.ENV_CREDENTIALS_FILE, GRUB_HASH_ENV}
    assert read == set(tools.SECRET_ENV) == set(SECRETS)


@pytest.mark.usefixtures("secret_env")
def test_a_tool_run_does_not_see_the_secrets() -> None:
    """tools.run (qemu-img, mmdebstrap, ...): a real `env` prints no secret, the rest is kept."""
    out = tools.run(["env"]).stdout
    assert leaked(out) == []
    assert "IFT_ORDINARY_VARIABLE=still-here" in out.splitlines()


@pytest.mark.usefixtures("secret_env")
def test_a_tool_run_keeps_its_extra_variables() -> None:
    out = tools.run(["env"], env={"LC_ALL": "C"}).stdout.splitlines()
    assert "LC_ALL=C" in out


@pytest.mark.usefixtures("secret_env")
def test_packer_does_not_see_the_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in `packer` that prints its environment (into the build log) prints no secret."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "packer"
    fake.write_text("#!/bin/sh\nenv\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    log = tmp_path / "packer.log"
    run = packer.PackerRun(
        tmp_path / "t.pkr.hcl", {}, tmp_path / "w", log, tmp_path / "serial.log", "5m"
    )
    packer.build(run)
    text = log.read_text()
    assert "CHECKPOINT_DISABLE=1" in text.splitlines()  # the fake did print its environment
    assert leaked(text) == []


@pytest.mark.usefixtures("secret_env")
def test_verify_specs_do_not_see_the_secrets(tmp_path: Path) -> None:
    """The testinfra run (a real pytest subprocess) gets IF_VERIFY_* but no secret."""
    dump = tmp_path / "env.txt"
    spec = tmp_path / "test_dump_env.py"
    spec.write_text(
        "import os\n\n\ndef test_dump():\n"
        f"    open({str(dump)!r}, 'w').write('\\n'.join(f'{{k}}={{v}}' for k, v in "
        "os.environ.items()))\n"
    )
    booted = vm.BootedVM(port=1, user="ops", key=tmp_path / "key", serial_log=tmp_path / "s")
    verify._run_specs(booted, "ssh-ed25519 AAAA test", [spec], tmp_path / "junit.xml", "fam")
    text = dump.read_text()
    assert "IF_VERIFY_FAMILY=fam" in text.splitlines()
    assert "IFT_ORDINARY_VARIABLE=still-here" in text.splitlines()
    assert leaked(text) == []


@pytest.mark.usefixtures("secret_env")
def test_the_check_sees_a_leak() -> None:
    """The fixture's secrets do reach a child that is given our whole environment."""
    out = subprocess.run(["env"], capture_output=True, text=True, env=dict(os.environ)).stdout
    assert leaked(out) == sorted(SECRETS)
