"""The real build engine with only what would boot a VM replaced, for cache tests.

The Packer run writes an overlay on the parent with qemu-io (different bytes every time, as a
real rebuild gives), and the stand-in root is a small qcow2. Rebase, sealing (leak scan,
flatten), records and the cache are the real ones.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from imagefactory.engine import recipes
from imagefactory.engine.context import LayerBuild
from imagefactory.util.tools import run
from tests.prereq import require_tools
from tests.standinkit import script_layer, standin_config, write_standin

CONFIG = standin_config(
    {
        "common": script_layer("common"),
        "harden": script_layer("harden"),
        "stack": script_layer("stack"),
        "seal": script_layer("seal", seal=True),
    },
    {
        "fa": ["base", "common", "harden", "stack", "seal"],
        "fb": ["base", "common", "harden", "seal"],
    },
    build={"accelerator": "tcg", "compression": "none"},
)
_counter = itertools.count()
MIB = 1024 * 1024


def fake_builders(layer_size: int) -> tuple[Any, Any]:
    """(root, packer) layer builders that write `layer_size` bytes of data of their own into
    one of 8 ranges of the disk (a sealed image holds them all), different on every build."""
    step = max(layer_size, MIB)

    def write(image: Path) -> None:
        n = next(_counter)
        cmd = f"write -P {n % 250 + 1} {(n % 8) * step} {layer_size}"
        run(["qemu-io", "-f", "qcow2", "-c", cmd, str(image)])

    def root(self: recipes.StandinRoot, run_: LayerBuild) -> str:
        image = run_.entry / "layer.qcow2"
        run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), str(8 * max(step, 2 * MIB))])
        write(image)
        return image.name

    def packer(self: recipes.PackerRecipe, run_: LayerBuild) -> str:
        disk = run_.tmp / "out" / "layer.qcow2"
        disk.parent.mkdir()
        parent = str(run_.parent_image.resolve())
        run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", parent, str(disk)])
        write(disk)
        return self.finish(run_, disk)

    return root, packer


def make_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layer_size: int = 64 * 1024
) -> Path:
    """A config of two families with fake layer builders; returns its directory."""
    require_tools("qemu-img", "qemu-io", "ssh-keygen", "packer", "qemu-system-x86_64")
    require_tools("mmdebstrap")  # its version is an input of the root layer's key
    write_standin(tmp_path, CONFIG)
    root, packer = fake_builders(layer_size)
    monkeypatch.setattr(recipes.StandinRoot, "build", root)
    monkeypatch.setattr(recipes.PackerRecipe, "build", packer)
    return tmp_path
