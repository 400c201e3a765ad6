"""The stand-in e2e workspace: a copy of the stand-in config and its scripts, and artifacts.

The copy's `common` layer (which stands in for OL8's update layer) is keyed by the state of
a repository served on 127.0.0.1 for the session, as a nightly build host keys it: every
module builds the same layers, so the nightly finds the image the pipeline built and
verified, and builds only what its own repository change calls for. Modules run in the
order of E2E_ORDER: the pipeline builds the session's images, the nightly goes last (it
changes the repository state, then puts it back).

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
import yaml

from imagefactory.config import load_config
from imagefactory.engine.build import plan_family
from imagefactory.engine.context import Artifacts
from tests.prereq import in_ci, require_root, require_tools
from tests.repomd_server import REVISION, RepoState, serve, write_repomd

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
E2E_ORDER = (
    "test_standin_pipeline.py",
    "test_standin_roles.py",
    "test_standin_via_libvirt.py",
    "test_standin_via_libvirt_galera.py",
    "test_standin_via_libvirt_rr.py",
    "test_standin_nightly.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """E2E modules in E2E_ORDER (builds first, nightly last); other tests keep their place."""
    here = Path(__file__).parent
    slots = [i for i, item in enumerate(items) if item.path.parent == here]
    ordered = sorted(
        (items[i] for i in slots),
        key=lambda item: E2E_ORDER.index(item.path.name) if item.path.name in E2E_ORDER else 99,
    )
    for i, item in zip(slots, ordered, strict=True):
        items[i] = item


@pytest.fixture(scope="session")
def repo_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RepoState]:
    """The repository whose repomd.xml keys the workspace's `common` layer."""
    root = tmp_path_factory.mktemp("repos")
    write_repomd(root / "debian", REVISION)
    with serve(root, _kept_port()) as served:
        yield RepoState(root, served)


def _kept_port() -> int:
    """The repository port a reused workspace's config names (its keys hold the URL)."""
    reuse = os.environ.get("IMAGEFACTORY_E2E_WORKSPACE")
    if not reuse or in_ci() or not (Path(reuse) / "standin.yaml").is_file():
        return 0
    doc = yaml.safe_load((Path(reuse) / "standin.yaml").read_text())
    urls = doc["layers"]["common"].get("epoch_from", {}).get("repomd", [])
    return int(urls[0].split(":")[2].split("/")[0]) if urls else 0


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory, repo_state: RepoState) -> Iterator[Path]:
    require_tools(*TOOLS)
    require_root("the e2e builds the stand-in base with mmdebstrap")
    reuse = os.environ.get("IMAGEFACTORY_E2E_WORKSPACE")
    if reuse and not in_ci():
        _key_common_by(Path(reuse) / "standin.yaml", repo_state.url)
        yield Path(reuse)
        return
    ws = tmp_path_factory.mktemp("e2e")
    _key_common_by(ws / "standin.yaml", repo_state.url, REPO / "standin.yaml")
    for rel in ("standin", "packer", "tests/images", "appcore", "hardening"):
        shutil.copytree(REPO / rel, ws / rel, ignore=shutil.ignore_patterns("__pycache__"))
    art = Artifacts(ws / "artifacts")
    if not in_ci():
        _seed_base(ws, art)
    yield ws
    if not in_ci():
        _save_base(ws, art)


def _key_common_by(config: Path, url: str, source: Path | None = None) -> None:
    """`common` with `epoch_from: {repomd: [url]}`, the rest of the text as it is (some tests
    edit the text of the config)."""
    text = (source or config).read_text()
    lines = [ln for ln in text.splitlines(keepends=True) if "epoch_from: {repomd:" not in ln]
    at = lines.index("  common:\n") + 1
    lines.insert(at, f"    epoch_from: {{repomd: [{url}]}}\n")
    config.write_text("".join(lines))


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
