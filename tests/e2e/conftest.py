"""The stand-in e2e workspace: a copy of the stand-in config and its scripts, and artifacts.

CI builds everything from scratch. Local runs keep the stand-in base layer (and the build key
that it authorizes) in ~/.cache/imagefactory-e2e so they skip the ~1 min mmdebstrap step.
Outside CI, IMAGEFACTORY_E2E_WORKSPACE=DIR reuses a workspace a previous run (or a build by
hand) left in DIR, with every layer it built: for iterating on one e2e module.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagefactory.config import load_config
from imagefactory.engine.build import plan_family
from imagefactory.engine.context import Artifacts
from tests.prereq import in_ci, require_root, require_tools

REPO = Path(__file__).resolve().parents[2]
LOCAL_CACHE = Path(
    os.environ.get("IMAGEFACTORY_E2E_CACHE", Path.home() / ".cache/imagefactory-e2e")
)
TOOLS = (
    "packer",
    "qemu-system-x86_64",
    "qemu-img",
    "mmdebstrap",
    "mkfs.vfat",
    "mcopy",
    "syslinux",
    "sfdisk",
    "mkfs.ext4",
    "ssh-keygen",
)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_tools(*TOOLS)
    require_root("the e2e builds the stand-in base with mmdebstrap")
    reuse = os.environ.get("IMAGEFACTORY_E2E_WORKSPACE")
    if reuse and not in_ci():
        yield Path(reuse)
        return
    ws = tmp_path_factory.mktemp("e2e")
    shutil.copy(REPO / "standin.yaml", ws)
    for rel in ("standin", "packer", "tests/images", "appcore", "hardening"):
        shutil.copytree(REPO / rel, ws / rel, ignore=shutil.ignore_patterns("__pycache__"))
    art = Artifacts(ws / "artifacts")
    if not in_ci():
        _seed_base(ws, art)
    yield ws
    if not in_ci():
        _save_base(ws, art)


def _base_key(ws: Path, art: Artifacts) -> str:
    cfg = load_config(ws / "standin.yaml")
    return plan_family(cfg, cfg.family("standin-alpha"), art).steps[0].key


def _seed_base(ws: Path, art: Artifacts) -> None:
    if not (LOCAL_CACHE / "keys").is_dir():
        return
    shutil.copytree(LOCAL_CACHE / "keys", art.credentials)
    key = _base_key(ws, art)
    if (LOCAL_CACHE / "layers" / key).is_dir():
        shutil.copytree(LOCAL_CACHE / "layers" / key, art.cache.entry(key))


def _save_base(ws: Path, art: Artifacts) -> None:
    if not art.credentials.is_dir():
        return
    key = _base_key(ws, art)
    if not art.cache.has(key):
        return
    if not (LOCAL_CACHE / "keys").is_dir():
        shutil.copytree(art.credentials, LOCAL_CACHE / "keys")
    if not (LOCAL_CACHE / "layers" / key).is_dir():
        shutil.copytree(art.cache.entry(key), LOCAL_CACHE / "layers" / key)
