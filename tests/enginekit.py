"""The real build engine with only what would boot a VM replaced, for cache tests.

The Packer run writes an overlay on the parent with qemu-io (different bytes every time, as a
real rebuild gives), and the stand-in root is a small qcow2. Rebase, sealing (leak scan,
flatten), records and the cache are the real ones.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from imagefactory.engine import recipes
from imagefactory.engine.context import LayerBuild
from imagefactory.util.tools import run
from tests.prereq import require_tools

CONFIG = """
version: 1
build: {accelerator: tcg, compression: none}
sources:
  deb: {kind: standin, suite: bookworm, epoch: "1", packages: [sudo]}
layers:
  base: {source: deb}
  common: {scripts: [s/10-do-common.sh]}
  harden: {scripts: [s/10-do-harden.sh]}
  stack: {scripts: [s/10-do-stack.sh]}
  seal: {scripts: [s/10-do-seal.sh], seal: true}
families:
  fa: {layers: [base, common, harden, stack, seal]}
  fb: {layers: [base, common, harden, seal]}
"""
_counter = itertools.count()


def _write_pattern(image: Path) -> None:
    """Guest data that differs on every build, like a real layer's."""
    n = next(_counter)
    run(["qemu-io", "-f", "qcow2", "-c", f"write -P {n % 250 + 1} {n % 8}M 64k", str(image)])


def fake_root(self: recipes.StandinRoot, run_: LayerBuild) -> str:
    image = run_.entry / "layer.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"])
    _write_pattern(image)
    return image.name


def fake_packer(self: recipes.PackerRecipe, run_: LayerBuild) -> str:
    disk = run_.tmp / "out" / "layer.qcow2"
    disk.parent.mkdir()
    parent = str(run_.parent_image.resolve())
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", parent, str(disk)])
    _write_pattern(disk)
    return self.finish(run_, disk)


def make_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config of two families with fake layer builders; returns its directory."""
    require_tools("qemu-img", "qemu-io", "ssh-keygen", "packer", "qemu-system-x86_64")
    require_tools("mmdebstrap")  # its version is an input of the root layer's key
    (tmp_path / "s").mkdir()
    for name in ("common", "harden", "stack", "seal"):
        (tmp_path / "s" / f"10-do-{name}.sh").write_text(f"#!/bin/bash\necho {name}\n")
    (tmp_path / "f.yaml").write_text(CONFIG)
    monkeypatch.setattr(recipes.StandinRoot, "build", fake_root)
    monkeypatch.setattr(recipes.PackerRecipe, "build", fake_packer)
    return tmp_path
