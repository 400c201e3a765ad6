"""The layer cache never lies: real qcow2 chains in a real cache, built by the real engine.

Only what would boot a VM is replaced: the Packer run writes an overlay on the parent with
qemu-io (different bytes every time, as a real rebuild gives), and the stand-in root is a
small qcow2. Rebase, sealing (leak scan, flatten), records and the cache are the real ones.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from imagefactory import commands
from imagefactory.config import load_config
from imagefactory.engine.build import build_family
from imagefactory.engine.context import Artifacts
from imagefactory.engine.integrity import verify_all
from imagefactory.errors import FactoryError
from tests.enginekit import make_project

pytestmark = pytest.mark.integration


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_project(tmp_path, monkeypatch)


def build(project: Path, family: str = "fa") -> tuple[str, ...]:
    cfg = load_config(project / "f.yaml")
    return build_family(cfg, cfg.family(family), Artifacts(project / "artifacts")).built


def make_seal_stale(project: Path) -> None:
    script = project / "s" / "10-do-seal.sh"
    script.write_text(script.read_text() + "echo again\n")


def layer_key(project: Path, name: str, family: str = "fa") -> str:
    key = Artifacts(project / "artifacts").cache.ref(family, name)
    assert key is not None
    return key


def test_a_rebuilt_parent_invalidates_its_children(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Deleting a middle layer rebuilds it and every overlay above it, none reused on it."""
    assert build(project) == ("base", "common", "harden", "stack", "seal")
    cache = Artifacts(project / "artifacts").cache
    subprocess.run(["rm", "-rf", str(cache.entry(layer_key(project, "common")))], check=True)
    make_seal_stale(project)
    capsys.readouterr()
    assert build(project) == ("common", "harden", "stack", "seal")
    assert "built meanwhile" not in capsys.readouterr().out
    assert [c.problems for c in verify_all(cache)] == [()] * 5


def test_a_child_on_other_parent_bytes_is_never_reused(project: Path) -> None:
    """The plan refuses a cached overlay whose record names other parent bytes, and says so."""
    build(project)
    cache = Artifacts(project / "artifacts").cache
    subprocess.run(["rm", "-rf", str(cache.entry(layer_key(project, "harden")))], check=True)
    build(project, "fb")  # rebuilds harden: other bytes, same key
    make_seal_stale(project)
    text = commands.plan(project / "f.yaml", "fa", project / "artifacts")
    assert "stack" in text and "built on other bytes of parent layer harden" in text
    assert build(project) == ("stack", "seal")


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_corrupt_layer_is_caught_before_it_is_used(
    project: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A damaged cached image is named by cache.verify and rebuilt by the next build."""
    build(project)
    art = Artifacts(project / "artifacts")
    image = art.cache.image(layer_key(project, "harden"))
    with image.open("r+b") as fh:
        if damage == "truncate":
            fh.truncate(image.stat().st_size // 2)
        else:
            fh.seek(image.stat().st_size // 2)
            block = fh.read(4096)
            fh.seek(-len(block), 1)
            fh.write(bytes(b ^ 0xFF for b in block))
    with pytest.raises(FactoryError, match=r"harden .* BAD: its image hashes to"):
        commands.cache_verify(project / "artifacts")
    make_seal_stale(project)
    capsys.readouterr()
    assert build(project) == ("harden", "stack", "seal")
    assert "layer harden" in capsys.readouterr().err
    assert "1 bad" not in commands.cache_verify(project / "artifacts")


def test_evict_removes_a_layer_and_what_is_built_on_it(project: Path) -> None:
    """--layer takes the layer and its descendants; --family only that family's own layers."""
    build(project)
    build(project, "fb")
    cache = Artifacts(project / "artifacts").cache
    stack = layer_key(project, "stack")
    out = commands.cache_evict(project / "artifacts", layer=stack[:12], family=None)
    assert out.startswith("removed 2 layer(s)") and not cache.has(stack)
    assert not cache.has(layer_key(project, "seal"))
    harden = layer_key(project, "harden")
    commands.cache_evict(project / "artifacts", layer=None, family="fb")
    assert cache.has(harden) and not cache.has(layer_key(project, "seal", "fb"))
    with pytest.raises(FactoryError, match="at least 12 characters"):
        commands.cache_evict(project / "artifacts", layer="abc", family=None)


def test_plan_says_cached_only_for_layers_that_are_there(project: Path) -> None:
    """Below a cached sealed image, a missing layer is shown as not needed."""
    build(project)
    cache = Artifacts(project / "artifacts").cache
    subprocess.run(["rm", "-rf", str(cache.entry(layer_key(project, "stack")))], check=True)
    text = commands.plan(project / "f.yaml", "fa", project / "artifacts")
    stack_line = next(line for line in text.splitlines() if line.strip().startswith("stack"))
    assert "not needed" in stack_line and "cached" not in stack_line.split("(")[0]


def test_temp_dirs_of_dead_builds_are_removed(project: Path) -> None:
    """A build removes staging dirs nobody's lock covers and keeps one a live build holds."""
    build(project)
    cache = Artifacts(project / "artifacts").cache
    dead = cache.root / "tmp" / f"{'d' * 64}.x1"
    live = cache.root / "tmp" / f"{'e' * 64}.x2"
    dead.mkdir(parents=True)
    live.mkdir()
    with cache.lock("e" * 64):
        make_seal_stale(project)
        build(project)
        assert not dead.exists() and live.exists()
