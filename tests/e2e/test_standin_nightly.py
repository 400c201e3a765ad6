"""The nightly on the stand-in, through `invoke nightly`: real builds, verify boots, a real
store, and the session's repository-state server on 127.0.0.1 keying the update layer
(`common` stands in for it, as OL8's update layer is keyed by its repositories' repomd.xml).

Runs after the other e2e modules (tests/e2e/conftest.py) and shares the session's workspace
and layer cache: the first night publishes whatever the cache does not yet hold built and
verified (on a full run, nothing is left to build or boot), a second night is a no-op, new
repository metadata rebuilds from the update layer and the changelog says so, and a host
with an empty artifacts directory gets the same sealed image from the remote layer cache
without Packer. The repository state is put back at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from imagefactory.config import load_config
from imagefactory.engine.build import plan_family
from imagefactory.engine.context import Artifacts
from imagefactory.store import layer_cache, layout
from imagefactory.store.fs_backend import FsBackend
from imagefactory.util.fsutil import sha256_file
from tests.clikit import run_task
from tests.repomd_server import REVISION, RepoState
from tests.storekit import SigningKeys, make_signing_keys

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
FAMILY = "standin-alpha"


@pytest.fixture(scope="module")
def night(
    workspace: Path, repo_state: RepoState, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """nightly.yaml: the session's standin.yaml (`common` keyed by the repo server) with a
    directory store outside the artifacts, the layer cache on, this run's signing key."""
    keys: SigningKeys = make_signing_keys(tmp_path_factory.mktemp("nightly-keys"))
    doc = yaml.safe_load((workspace / "standin.yaml").read_text())
    assert doc["layers"]["common"]["epoch_from"] == {"repomd": [repo_state.url]}
    doc["store"] = {
        "kind": "fs",
        "path": str(tmp_path_factory.mktemp("nightly-store")),
        "signing_key": str(keys.private_key),
        "allowed_signers": str(keys.allowed_signers),
        "layer_cache": True,
    }
    path = workspace / "nightly.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    yield path
    repo_state.write(REVISION)  # the session's state again: its layers are cached


def invoke(
    *args: str, artifacts: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A task as the nightly job runs it (no terminal, its own process)."""
    more = {"INVOKE_FACTORY_ARTIFACTS": str(artifacts), **(env or {})}
    return run_task(*args, env=more, without_store_env=True, timeout=3600)


def store_of(night: Path) -> FsBackend:
    return FsBackend(Path(yaml.safe_load(night.read_text())["store"]["path"]))


def nightly(night: Path, workspace: Path, reports: Path) -> subprocess.CompletedProcess[str]:
    return invoke(
        "nightly",
        f"--family={FAMILY}",
        f"--config={night}",
        f"--reports={reports}",
        artifacts=workspace / "artifacts",
    )


def versions(night: Path) -> list[str]:
    return sorted(layout.scan_versions(store_of(night), FAMILY).get(FAMILY, {}))


def first_to_build(night: Path, workspace: Path) -> str | None:
    """The first layer the night must build, as the plan sees the cache now (None: none)."""
    cfg = load_config(night)
    plan = plan_family(cfg, cfg.family(FAMILY), Artifacts(workspace / "artifacts"))
    return plan.todo[0].layer.name if plan.todo else None


def test_first_night_builds_verifies_and_publishes(workspace: Path, night: Path) -> None:
    """The first night builds what the cache lacks, verifies, publishes, moves nightly."""
    reports = workspace / "reports-1"
    first = first_to_build(night, workspace)
    run = nightly(night, workspace, reports)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    why = f"rebuilt from layer {first} because" if first else "every layer cached"
    assert f"{FAMILY}: published: {why}" in run.stdout
    assert f"reports: {reports}" in run.stdout
    (version,) = versions(night)
    pointer = json.loads(store_of(night).get_bytes(layout.channel_key(FAMILY, "nightly")))
    assert pointer["version"] == version
    files = {p.name for p in (reports / FAMILY).iterdir()}
    assert {"changelog.md", "changelog.json", "manifest.json", "sbom.cdx.json"} <= files
    assert any(n.endswith(".arf.xml") for n in files) and any(
        n.endswith("junit.xml") for n in files
    )
    assert "first version on this channel" in (reports / FAMILY / "changelog.md").read_text()
    summary = (reports / "summary.md").read_text()
    assert f"| {FAMILY} | published | {version} |" in summary


def test_a_night_without_changes_is_a_no_op(workspace: Path, night: Path) -> None:
    """Same repo state, same sources: nothing built, booted or published, exit 0, says why."""
    before = versions(night)
    started = time.monotonic()
    run = nightly(night, workspace, workspace / "reports-2")
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    line = next(ln for ln in run.stdout.splitlines() if ln.startswith(f"  {FAMILY}:"))
    assert line.startswith(f"  {FAMILY}: no-op: nothing changed; nightly already has this image")
    assert "not verified again, nothing published" in line
    assert "building" not in run.stdout and "booting" not in run.stdout
    assert versions(night) == before
    print(f"no-op night: {seconds:.1f} s wall")  # the closing note quotes it (-s shows it)


def test_new_repository_metadata_rebuilds_from_update(
    workspace: Path, night: Path, repo_state: RepoState
) -> None:
    """New repomd.xml: rebuilt from `common` on, published; the changelog names the layers."""
    repo_state.write("1764900000", checksum="1" * 64)
    run = nightly(night, workspace, workspace / "reports-3")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"{FAMILY}: published: rebuilt from layer common because" in run.stdout
    assert "repo state changed: " in run.stdout
    assert "revision 1764800000 -> 1764900000" in run.stdout
    assert len(versions(night)) == 2
    changelog = (workspace / "reports-3" / FAMILY / "changelog.md").read_text()
    for name in ("common", "harden", "stack-alpha", "appcore-persistence", "seal"):
        assert f"- {name}: " in changelog
    assert "- base: " not in changelog
    assert "revision 1764800000 -> 1764900000" in changelog.split("## Why this build")[1]


def test_an_empty_host_gets_the_image_from_the_remote_cache_without_packer(
    workspace: Path, night: Path, tmp_path: Path
) -> None:
    """A second artifacts dir (with the team's build credential) fetches; Packer never runs."""
    fresh = tmp_path / "artifacts"
    shutil.copytree(workspace / "artifacts" / "keys", fresh / "keys")
    no_packer = tmp_path / "bin"
    no_packer.mkdir()
    # `packer version` is an input of every layer key (the plan asks it); anything else
    # would be a Packer run, which must not happen.
    real = shutil.which("packer")
    (no_packer / "packer").write_text(
        f'#!/bin/sh\n[ "$1" = version ] && exec {real} version\n'
        "echo 'packer must not run' >&2\nexit 99\n"
    )
    (no_packer / "packer").chmod(0o755)
    env = {"PATH": f"{no_packer}:{os.environ['PATH']}"}
    run = invoke("build", f"--family={FAMILY}", f"--config={night}", artifacts=fresh, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "fetched seal" in run.stdout and "building" not in run.stdout
    first = sha256_file(workspace / "artifacts" / "images" / FAMILY / f"{FAMILY}.qcow2")
    assert sha256_file(fresh / "images" / FAMILY / f"{FAMILY}.qcow2") == first
    assert layer_cache.listing(store_of(night))
