"""`invoke nightly`'s decisions with the real engine, cache and store, and fake layer builders
and verify boots (tests/enginekit.py; the stand-in e2e runs the real ones): what a night
does, says and returns per family."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from imagefactory import commands, nightly
from imagefactory.engine import recipes
from imagefactory.engine.context import LayerBuild
from imagefactory.errors import BuildError, FactoryError
from imagefactory.store import layout
from imagefactory.store.api import StoreError
from imagefactory.store.fs_backend import FsBackend
from imagefactory.verify import VerifyResult
from tests.enginekit import make_project
from tests.metricskit import promtool_check_metrics, samples
from tests.storekit import SigningKeys

pytestmark = pytest.mark.integration


@pytest.fixture
def boots() -> list[str]:
    """Families whose sealed image the (fake) verify booted, in order."""
    return []


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: SigningKeys, boots: list[str]
) -> Path:
    root = make_project(tmp_path, monkeypatch)
    config = root / "f.yaml"
    config.write_text(
        config.read_text()
        + "store:\n  kind: fs\n  path: store\n  layer_cache: true\n"
        + f"  signing_key: {keys.private_key}\n  allowed_signers: {keys.allowed_signers}\n"
    )
    monkeypatch.setattr(commands, "verify", _fake_verify(boots))
    return root


def _fake_verify(boots: list[str]) -> Any:
    def verify(config: Path, family: str, artifacts: Path) -> VerifyResult:
        """Records the boot; marks the exported manifest as verified, with packages."""
        boots.append(family)
        sealed = artifacts / "images" / family
        doc = json.loads((sealed / "manifest.json").read_text())
        doc["verification"] = {"passed": True, "tests": 1, "failed": 0}
        doc["packages"] = [f"bash=5.2.15-{len(boots)} amd64", "sudo=1.9.13 amd64"]
        doc["packages_format"] = "dpkg"
        (sealed / "manifest.json").write_text(json.dumps(doc))
        return VerifyResult(True, 1, 0, sealed / "manifest.json")

    return verify


def run(project: Path, family: str = "all") -> str:
    return commands.nightly(
        project / "f.yaml", project / "artifacts", family, "nightly", project / "r", True
    )


def test_a_night_publishes_each_family_then_does_nothing(project: Path, boots: list[str]) -> None:
    """First night: both families built, verified, published; second: no-op, no boot."""
    first = run(project)
    assert "  fa: published: rebuilt from layer base because never built" in first
    assert "  fb: published: " in first and boots == ["fa", "fb"]
    store = FsBackend(project / "store")
    assert len(layout.visible_images(store)) == 2
    second = run(project)
    assert "  fa: no-op: nothing changed; nightly already has this image" in second
    assert "not verified again, nothing published" in second and boots == ["fa", "fb"]
    assert len(layout.visible_images(store)) == 2
    summary = (project / "r" / "summary.md").read_text()
    assert "| fa | no-op | - |" in summary
    assert not list(project.rglob("*.prom"))  # no metrics directory set: no metrics


def test_a_failed_family_does_not_stop_the_other(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fb's seal fails to build; fa is still published; the exit code says one failed."""
    real = recipes.PackerRecipe.build

    def failing(self: recipes.PackerRecipe, run_: LayerBuild) -> str:
        if run_.ctx.family.name == "fb" and run_.name == "seal":
            raise BuildError("seal: the provisioner exited 1 (fake)")
        return real(self, run_)

    monkeypatch.setattr(recipes.PackerRecipe, "build", failing)
    with pytest.raises(FactoryError) as failed:
        run(project)
    text = str(failed.value)
    assert "  fb: failed at build: seal: the provisioner exited 1 (fake)" in text
    assert "  fa: published: rebuilt from layer base because never built" in text
    assert text.rstrip().endswith("FAILED")
    assert [r.family for r in layout.visible_images(FsBackend(project / "store"))] == ["fa"]


def test_a_fresh_runner_fetches_and_boots_nothing(project: Path, boots: list[str]) -> None:
    """A new runner (empty artifacts, the team's credential): fetched, no boot, no publish."""
    run(project)
    fresh = project / "fresh"
    shutil.copytree(project / "artifacts" / "keys", fresh / "keys")
    text = commands.nightly(project / "f.yaml", fresh, "all", "nightly", project / "r2", True)
    assert "  fa: no-op: fetched seal from the store; nightly already has this image" in text
    assert "  fb: no-op: fetched seal from the store;" in text
    assert boots == ["fa", "fb"] and len(layout.visible_images(FsBackend(project / "store"))) == 2


def test_a_night_writes_metrics_that_promtool_accepts(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a metrics directory: success times, no failure (0), image size, CIS score and
    layer build times per family and version; the file passes promtool."""
    (project / "metrics").mkdir()
    verify = commands.verify

    def scanned(config: Path, family: str, artifacts: Path) -> VerifyResult:
        """The fake verify, and a compliance scan's score as verify records it."""
        result = verify(config, family, artifacts)
        doc = json.loads(result.report.read_text())
        doc["compliance"] = {"profile": "cis", "score": 87.25 if family == "fa" else 91.5}
        result.report.write_text(json.dumps(doc))
        return result

    monkeypatch.setattr(commands, "verify", scanned)
    text = commands.nightly(
        project / "f.yaml",
        project / "artifacts",
        "all",
        "nightly",
        project / "r",
        True,
        project / "metrics",
    )
    prom = project / "metrics" / "imagefactory_nightly.prom"
    promtool_check_metrics(prom)
    got = samples(prom)
    version = text.split("nightly -> ")[1].split()[0]  # fa's version, as the summary says
    assert got['imagefactory_nightly_last_failure_timestamp_seconds{family="fa"}'] == 0
    assert got['imagefactory_nightly_last_success_timestamp_seconds{family="fb"}'] > 1.7e9
    size = got[f'imagefactory_image_size_bytes{{family="fa",version="{version}"}}']
    sealed = json.loads((project / "artifacts/images/fa/manifest.json").read_text())
    assert size == sealed["image"]["size"]
    assert got[f'imagefactory_image_cis_score{{family="fa",version="{version}"}}'] == 87.25
    assert (
        f'imagefactory_image_layer_build_seconds{{family="fa",layer="seal",version="{version}"}}'
        in got
    )
    assert got["imagefactory_nightly_duration_seconds"] > 0


def test_a_failed_night_keeps_the_last_success_in_the_metrics(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Night 1 succeeds; night 2 of fb alone fails (store down): fb's failure is newer than
    its success, which is kept, as are its image's and fa's samples."""
    metrics = project / "metrics"
    metrics.mkdir()
    args = (project / "f.yaml", project / "artifacts")
    commands.nightly(*args, "all", "nightly", project / "r", True, metrics)
    first = samples(metrics / "imagefactory_nightly.prom")

    def unreachable(*_: object) -> str:
        raise StoreError("store unreachable (fake)")

    monkeypatch.setattr(nightly.api, "channel_image_sha256", unreachable)
    with pytest.raises(FactoryError, match="fb: failed at publish: store unreachable"):
        commands.nightly(*args, "fb", "nightly", project / "r2", True, metrics)
    prom = metrics / "imagefactory_nightly.prom"
    promtool_check_metrics(prom)
    second = samples(prom)
    ok, bad = (
        'imagefactory_nightly_last_success_timestamp_seconds{family="fb"}',
        'imagefactory_nightly_last_failure_timestamp_seconds{family="fb"}',
    )
    assert second[ok] == first[ok] and second[bad] > second[ok]
    fa = {k: v for k, v in first.items() if 'family="fa"' in k}
    assert fa and {k: second[k] for k in fa} == fa
    assert [k for k in second if k.startswith('imagefactory_image_size_bytes{family="fb"')]
