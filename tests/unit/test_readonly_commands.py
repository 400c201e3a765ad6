"""Read-only commands write nothing; unusable artifacts directories are named, not crashed on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagefactory import commands, doctor
from imagefactory.config import load_config
from imagefactory.engine.context import Artifacts
from imagefactory.errors import FactoryError
from imagefactory.guest.credential import ensure_build_credential, load_build_credential
from imagefactory.store.backend import StoreError
from imagefactory.store.fs_backend import FsBackend
from tests.plankit import plan_of
from tests.prereq import require_tools
from tests.standinkit import script_layer, standin_config, write_standin

CONFIG = standin_config(
    {"one": script_layer("one"), "seal": script_layer("one", seal=True)},
    {"fa": ["base", "one", "seal"]},
)


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_directory_problem_names_what_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert doctor.directory_problem(tmp_path / "new" / "deeper") is None
    assert doctor.directory_problem(afile) == f"{afile} is a regular file, not a directory"
    assert doctor.directory_problem(afile / "art") == (
        f"{afile} is a regular file, not a directory, so {afile / 'art'} cannot be created"
    )
    # root may write anywhere: the answer of access(2) for a read-only directory is simulated
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)
    assert doctor.directory_problem(tmp_path) == f"{tmp_path} is not writable by this user"
    assert doctor.directory_problem(tmp_path, writable=False) is None
    assert tree(tmp_path) == ["afile"]


def test_doctor_fails_an_artifacts_path_it_cannot_use(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    (check,) = [c for c in doctor.run_checks(afile / "artifacts") if c.name == "artifacts"]
    assert not check.ok and check.required and "is a regular file" in check.detail


def test_fs_store_check_without_create_makes_nothing(tmp_path: Path) -> None:
    FsBackend(tmp_path / "artifacts" / "store").check(create=False)
    assert tree(tmp_path) == []
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StoreError, match="afile is not a directory"):
        FsBackend(tmp_path / "afile" / "store").check(create=False)


def test_unusable_artifacts_is_one_factory_error(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(FactoryError, match=r"artifacts directory .*afile is a regular file"):
        commands._artifacts(afile, writable=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    require_tools("packer", "qemu-img", "qemu-system-x86_64", "mmdebstrap", "ssh-keygen")
    write_standin(tmp_path, CONFIG)
    return tmp_path


def test_plan_without_credential_writes_nothing_and_says_why(project: Path) -> None:
    before = tree(project)
    art = project / "artifacts"
    assert load_build_credential(art / "keys") is None
    text = commands.plan(project / "f.yaml", "fa", art)
    assert tree(project) == before
    root_line = text.splitlines()[1]
    assert root_line.split()[0] == "base" and "build" in root_line
    assert f"no build credential yet: the first build generates it in {art / 'keys'}" in root_line


def test_plan_with_credential_has_the_builds_keys(project: Path) -> None:
    """Once the credential exists, `plan` keys every layer exactly as the build does; before,
    its keys are provisional (the root layer's inputs lack the fingerprint)."""
    cfg = load_config(project / "f.yaml")
    provisional = commands._read_only_plan(cfg, cfg.family("fa"), Artifacts(project))
    ensure_build_credential(project / "keys")
    ours = commands._read_only_plan(cfg, cfg.family("fa"), Artifacts(project))
    assert [s.key for s in ours.steps] == [s.key for s in plan_of(project).steps]
    assert provisional.steps[0].key != ours.steps[0].key
    assert provisional.steps[0].inputs["build_key"] == "none yet"
