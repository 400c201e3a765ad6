"""Layer inputs are what git would commit: ignored files never change a key or reach a VM."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from imagefactory.config import load_config
from imagefactory.engine.keys import tree_digest
from imagefactory.util.paths import REPO
from imagefactory.util.sourcetree import copy_sources, hashing_rule, in_checkout, source_files
from tests.plankit import plan_of
from tests.prereq import require_tools

CONFIG = """
version: 1
sources:
  deb: {kind: standin, suite: bookworm, epoch: "1", packages: [sudo]}
layers:
  base: {source: deb}
  tools: {scripts: [s/10-do-tools.sh], files: [payload, single.conf]}
  seal: {scripts: [s/10-do-seal.sh], seal: true, per_family: true}
families:
  fa: {layers: [base, tools, seal]}
"""
IGNORE = ".ruff_cache/\n__pycache__/\n*.pyc\n"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def _tool_caches(directory: Path) -> None:
    """What running ruff and Python leaves beside sources."""
    (directory / ".ruff_cache" / "0.6.0").mkdir(parents=True)
    (directory / ".ruff_cache" / "0.6.0" / "123").write_bytes(b"cache")
    (directory / "__pycache__").mkdir(exist_ok=True)
    (directory / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\x00pyc")
    (directory / "stray.pyc").write_bytes(b"\x00pyc")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A committed project: the config, two scripts, a directory input and a file input."""
    require_tools("git", "ssh-keygen")
    (tmp_path / "s").mkdir()
    for name in ("tools", "seal"):
        (tmp_path / "s" / f"10-do-{name}.sh").write_text(f"#!/bin/bash\necho {name}\n")
    (tmp_path / "payload" / "lib").mkdir(parents=True)
    (tmp_path / "payload" / "run.sh").write_text("#!/bin/bash\necho run\n")
    (tmp_path / "payload" / "lib" / "util.py").write_text("X = 1\n")
    (tmp_path / "single.conf").write_text("a = 1\n")
    (tmp_path / "f.yaml").write_text(CONFIG)
    (tmp_path / ".gitignore").write_text(IGNORE + "/cache/\n/keys/\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return tmp_path


def _keys(project: Path) -> list[str]:
    return [s.key for s in plan_of(project).steps]


def test_ignored_files_change_no_key(checkout: Path) -> None:
    """Tool caches in a directory input (and beside a file input) leave every key as it was."""
    before = _keys(checkout)
    _tool_caches(checkout / "payload")
    _tool_caches(checkout / "payload" / "lib")
    _tool_caches(checkout)
    assert _keys(checkout) == before


def test_new_untracked_source_file_changes_the_key(checkout: Path) -> None:
    """A file git would commit counts before it is committed."""
    before = _keys(checkout)
    (checkout / "payload" / "lib" / "new.py").write_text("Y = 2\n")
    after = _keys(checkout)
    assert after[0] == before[0]
    assert after[1] != before[1] and after[2] != before[2]


def test_working_tree_content_of_a_tracked_file_counts(checkout: Path) -> None:
    """An uncommitted edit of a tracked file changes the key (its content, not git's)."""
    before = tree_digest(checkout / "payload")
    (checkout / "payload" / "run.sh").write_text("#!/bin/bash\necho edited\n")
    assert tree_digest(checkout / "payload") != before


def test_a_tracked_file_deleted_from_the_work_tree_is_no_input(checkout: Path) -> None:
    """Deleted but not committed: gone from the inputs, and the key says so."""
    before = tree_digest(checkout / "payload")
    (checkout / "payload" / "lib" / "util.py").unlink()
    assert [f.relative for f in source_files(checkout / "payload")] == ["run.sh"]
    assert tree_digest(checkout / "payload") != before


def test_the_build_vm_gets_exactly_the_hashed_files(checkout: Path, tmp_path: Path) -> None:
    """What is copied for the guest is the set the key hashed, modes kept."""
    (checkout / "payload" / "run.sh").chmod(0o755)
    _tool_caches(checkout / "payload")
    (checkout / "payload" / "untracked.txt").write_text("new\n")
    copy_sources(checkout / "payload", tmp_path / "staged")
    staged = sorted(
        p.relative_to(tmp_path / "staged").as_posix()
        for p in (tmp_path / "staged").rglob("*")
        if p.is_file()
    )
    assert staged == ["lib/util.py", "run.sh", "untracked.txt"]
    assert (tmp_path / "staged" / "run.sh").stat().st_mode & 0o111


def test_a_directory_outside_git_hashes_every_file_and_says_so(tmp_path: Path) -> None:
    """A tarball has no ignore rules: everything but __pycache__ counts, and doctor says so."""
    (tmp_path / "d" / "__pycache__").mkdir(parents=True)
    (tmp_path / "d" / "__pycache__" / "x.pyc").write_bytes(b"pyc")
    (tmp_path / "d" / ".ruff_cache").mkdir()
    (tmp_path / "d" / ".ruff_cache" / "c").write_bytes(b"c")
    (tmp_path / "d" / "a.sh").write_text("a\n")
    assert not in_checkout(tmp_path / "d")
    assert [f.relative for f in source_files(tmp_path / "d")] == [".ruff_cache/c", "a.sh"]
    assert "is not in a git checkout" in hashing_rule(tmp_path / "d")


@pytest.mark.parametrize("config", ["factory.yaml", "standin.yaml"])
def test_shipped_directory_inputs_ignore_tool_caches(config: str) -> None:
    """Every directory under files: of the shipped configs: caches change no digest, a new
    source file does. Removes only what it made, so a cache already there stays."""
    require_tools("git")
    assert in_checkout(REPO), "the suite runs from a git checkout"
    cfg = load_config(REPO / config)
    dirs = sorted({p for layer in cfg.layers.values() for p in layer.files if p.is_dir()})
    assert dirs, f"{config} has directory inputs"
    tag = f"ift-{os.getpid()}"
    for directory in dirs:
        before = tree_digest(directory)
        made: list[Path] = []
        try:
            for cache in (".ruff_cache", "__pycache__"):
                if not (directory / cache).exists():
                    made.append(directory / cache)
                (directory / cache / tag).mkdir(parents=True)
                made.append(directory / cache / tag)
                (directory / cache / tag / "x.pyc").write_bytes(b"cache")
            assert tree_digest(directory) == before, directory
            made.append(directory / f"{tag}.sh")
            made[-1].write_text("#!/bin/bash\n")
            assert tree_digest(directory) != before, directory
        finally:
            for path in reversed(made):
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
